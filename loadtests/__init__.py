"""Locust SLO suites and the post-deploy gate (never imports model/ or TensorFlow).

Locustfiles, one persona each, each runnable on its own with `locust -f`:
  predict.py          PredictionUser: batches of 1, 8 and 32 rows drawn from the stable version's
                      input schema and feature statistics (payloads.py), answers checked
  registry_reader.py  RegistryReader: model lists, search, one model, versions, rollout
  registry_writer.py  RegistryWriter: scratch model, If-Match edits and a stale 412, versions (never prod)
  shapes.py           EnvironmentShape: smoke, ramp and soak stages (load_plan.py)
The gate (gate.py, a `quitting` listener) is on when --slo-profile names a profile of
monitoring/slo.yaml; verdict.py holds its rules, canary.py the canary comparison,
measurements.py the per-version, per-second and CPU records, report.py the SLO report page.
`tfship verify` (cli.py) runs it all headless and prints the verdict line last.
Every request carries X-Tfship-Synthetic: 1.
"""
