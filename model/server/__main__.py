"""`python -m model.server --rest_api_port=8501 ...`: same as `tfship model-server`."""
import sys

from model.server.main import run

sys.exit(run("model-server", sys.argv[1:]))
