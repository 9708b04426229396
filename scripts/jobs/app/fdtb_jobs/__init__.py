"""A test app, shipped in each fixture release's apps/: real RQ workers and jobs that record
which release's code ran them (release.py and finish.py are written per release)."""
