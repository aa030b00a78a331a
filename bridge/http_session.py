"""The one way the bridge builds an HTTP client: a pooled requests.Session for one service."""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter


def pooled_session(url: str, pool_size: int) -> requests.Session:
    """A Session shared by all worker threads, with a pool as large as the number of concurrent calls.

    Proxy variables (``HTTPS_PROXY``, ``NO_PROXY``…) and ``REQUESTS_CA_BUNDLE`` are read once,
    here, for this service's URL. Left to requests, they are re-read from the environment, and
    ``~/.netrc`` from disk, on every call: about a tenth of the bridge's CPU per email.
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    settings = session.merge_environment_settings(url, {}, None, None, None)
    session.proxies.update(settings["proxies"])
    session.verify = settings["verify"]
    session.trust_env = False
    return session
