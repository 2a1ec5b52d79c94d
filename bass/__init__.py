"""bass, a quite simple build assistant.

`from bass import assert_pipeline, build` keeps working for build scripts written for
the prototype: the builder (the stdlib-only module `bass_builder`) is re-exported here,
and nothing else is imported, so build scripts never pull in the server's dependencies.
"""

from bass_builder import *  # noqa: F401,F403
from bass_builder import __all__  # noqa: F401
