"""The configuration a worker reads at start, as bench does: sites/common_site_config.json
(redis_queue) and the site's site_config.json (db_host), through the bench directory."""
import json
import os

from fdtb_jobs import release


def read(path):
    with open(path) as handle:
        return json.load(handle)


def redis_queue():
    return read("sites/common_site_config.json")["redis_queue"]


def db_host():
    try:
        return read(os.path.join("sites", release.SITE, "site_config.json")).get("db_host", "")
    except OSError:
        return ""
