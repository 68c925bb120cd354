"""`python -m loadtests.bench`: run the benchmarks (see loadtests.bench.cli)."""
import sys

from loadtests.bench.cli import main

sys.exit(main())
