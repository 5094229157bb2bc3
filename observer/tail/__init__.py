"""Live tail: log lines pushed to subscribers as this process ingests them (routers/tail.py serves it).

`TailingSink` (sink.py) sits in front of the plane's sink and hands each delivered batch to the `TailHub`
(hub.py), which files every tail by its scope (match.py) and never waits on one; `TailStream` (stream.py) writes
one tail as server-sent events; request.py checks the request like a logs query; settings.py bounds it all.
"""

from observer.tail.hub import TailHub, TooManyTails
from observer.tail.settings import TailSettings
from observer.tail.sink import TailingSink

__all__ = ["TailHub", "TailSettings", "TailingSink", "TooManyTails"]
