"""Which page may be shown in another site's frame, and by whom: one run's read-only view
(/?run=<key>&embed=1, what `watch()` puts in a notebook's cell output), by the pages
--frame-ancestors names (default: notebooks on this machine). Every other page, the shared run's,
any page with the control token in its address, keeps frame-ancestors 'none' (clickjacking).

The embedded view is read-only on the server too, not only on the screen: its connection says
`embed` in its connect auth and gets no control (access.py), and it brings a viewer secret of
its own (static/js/lib/viewer.js), so it owns no run even where the browser owns some.
"""
from __future__ import annotations

import re


PRIVATE_RUN_KEY = re.compile(r"^p-[0-9a-f]{12}$")  # as viewers.py names runs; never the shared run


def frameable(path: str, args) -> bool:
    """The read-only view of one private or watched run, without the control token."""
    return (path == "/" and args.get("embed") == "1" and "token" not in args
            and PRIVATE_RUN_KEY.match(args.get("run", "")) is not None)


def security_headers(headers: dict, path: str, args, frame_ancestors: list[str]) -> dict:
    """`headers` (the spine's, frame-ancestors 'none'), or for a frameable page with allowed
    origins: frame-ancestors those origins, and no X-Frame-Options (it cannot name them)."""
    if not frame_ancestors or not frameable(path, args):
        return headers
    policy = headers["Content-Security-Policy"].replace(
        "frame-ancestors 'none'", "frame-ancestors " + " ".join(frame_ancestors))
    return {**{name: value for name, value in headers.items() if name != "X-Frame-Options"},
            "Content-Security-Policy": policy}
