"""Server-rendered pages for labelers, reviewers, managers, clients and operators.

``install_web(app, services)`` adds the pages, their static files (small vanilla JavaScript
modules and one stylesheet, shipped in the package: no build step, nothing from outside), the
security headers and the HTML error pages to the application that serves the API. Pages parse
input, call a use case and render; the labeling and review screens call the JSON API from the
browser with the session cookie and its CSRF token.
"""

from labelvault.web.app import install_web

__all__ = ["install_web"]
