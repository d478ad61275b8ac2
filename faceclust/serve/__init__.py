"""``faceclust serve``: review people in the browser (a local web app on the catalog).

* ``app``: the pages and actions (Starlette, Jinja2 templates that escape by default);
  every action calls the library function the command line calls.
* ``security``: Host, token and CSRF checks; ``thumbs``: face thumbnails cached in the XDG cache.
* ``server``: binding the socket and running uvicorn.

Imports starlette, jinja2 and uvicorn only when a server is made.
"""
