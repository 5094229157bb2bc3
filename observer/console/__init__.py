"""The web console: plain HTML, CSS and ES modules served by the observer itself at `/`.

No build step, no CDN, nothing fetched at run time but the observer's own API: the files in `static/` are package
data, served by `router.py` with content types, validators and a Content-Security-Policy that lets the page load
only from its own origin. The console talks to the public API exactly as any client does (README "Asking
questions"), so it needs no server-side code beyond serving its files and telling the page how to sign in.
"""
