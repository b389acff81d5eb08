"""seapig_compat: the vendored seapig suites, the import shim and the fixtures file are run by
``run_suites.py`` in a subprocess, never collected by synthperf's own pytest run."""
collect_ignore_glob = ["upstream_git/*", "upstream_pypi/*", "shim/*", "pypi_fixtures.py", "run_suites.py",
                       "known_failures.py", "side_by_side.py"]
