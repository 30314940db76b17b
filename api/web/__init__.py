"""The workbench: server-rendered pages (Jinja2 + htmx) for the people who work cases.

``install_workbench(app)`` adds everything in one place: the pages, the sign-in, the static and
npm asset mounts, the offline ``/docs`` and ``/redoc``, and the handlers that turn a missing
session into a redirect and a page error into an HTML page.
"""

from api.web.install import install_workbench

__all__ = ["install_workbench"]
