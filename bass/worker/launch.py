"""The build entry's launcher: the process that becomes the entry.

The worker starts it as soon as it takes a job, so that its interpreter starts while
the checkout runs, not after it (`procs.Launcher`). It sets PR_SET_PDEATHSIG (SIGKILL
when the worker thread that started it dies: the thread, not the process, since the
local worker's thread in `bass serve` starts the entry and waits for it), then waits
for the entry's directory, argv and environment on a pipe and execs it: the entry's
pid is the launcher's. A wrapper rather than a preexec_fn: Python code between fork
and exec is unsafe in a threaded program such as `bass serve`.

Run as a script (`python -I -S launch.py PARENT STATUS_FD COMMAND_FD`), with nothing
of bass and as little of the standard library as it can: its start is on the way from
a trigger to the build's first command.

COMMAND_FD carries NUL-separated fields: the directory, the number of arguments, the
arguments, then `NAME=VALUE` for each environment variable; EOF with nothing on it
means the entry is not run after all (the checkout failed), and the launcher exits 0.
Why an exec failed goes back on STATUS_FD, closed on exec, as `errno NUL strerror NUL
filename`, so the worker still tells "cannot be run".

A Python entry (`python3 job.py ARGS`) can go further (`launch.py warm …`, run by that
very interpreter, started in the entry's environment but for BASS_COMMIT): the
interpreter starts, runs its site and imports the builder while the checkout runs,
then runs the script itself, as `python3 job.py` would — its `__main__`, `sys.argv`,
`sys.path[0]` (the script's directory), `__file__`, exit status and tracebacks. It says
`R` on STATUS_FD once ready (one that ends first, an interpreter that is not Python 3,
is not used: the worker starts the plain launcher). Where it could not be the same, it
execs the entry as above instead: an environment that
changed otherwise, a script that is not a file, or a script directory holding a module
of a name it imported ahead (which the script's directory would have shadowed).
"""

import os
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h
SIGKILL = 9  # on every Linux architecture; `import signal` would cost an enum import
COMMIT = b"BASS_COMMIT"  # the one variable only the checkout tells (a warm entry's)


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _die_with(parent: int) -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)
    except (ImportError, OSError, AttributeError):  # no prctl: the watchdog and sweeps remain
        pass
    if os.getppid() != parent:  # the worker died before the death signal was set
        os._exit(1)


def _command(command_fd: int) -> "tuple[bytes, list[bytes], dict[bytes, bytes]]":
    """The entry's directory, argv and environment; exits when there is no entry."""
    command = _read_all(command_fd)
    os.close(command_fd)
    if not command:
        os._exit(0)
    fields = command.split(b"\0")
    cwd, argc = fields[0], int(fields[1])
    argv = fields[2 : 2 + argc]
    env = dict(field.split(b"=", 1) for field in fields[2 + argc :])
    return cwd, argv, env


def _exec(cwd: bytes, argv: "list[bytes]", env: "dict[bytes, bytes]", status_fd: int) -> None:
    os.set_inheritable(status_fd, False)
    filename = cwd
    try:
        os.chdir(cwd)
        filename = argv[0]
        os.execvpe(argv[0], argv, env)
    except OSError as e:
        os.write(status_fd, b"%d\0%s\0%s" % (e.errno or 0, os.fsencode(e.strerror or ""), filename))
        os._exit(127)


def main(parent: int, status_fd: int, command_fd: int) -> None:
    _die_with(parent)
    _exec(*_command(command_fd), status_fd)


# -- a Python entry, warm ------------------------------------------------------------


def warm(parent: int, status_fd: int, command_fd: int) -> None:
    before = set(sys.modules)
    _die_with(parent)
    import types  # noqa: F401 -- for _run, counted in what was imported ahead

    try:
        import bass_builder  # noqa: F401 -- what the script will import first, ahead
    except Exception:  # its own error is the script's to meet, when it imports it
        pass
    ahead = {name.partition(".")[0] for name in set(sys.modules) - before}
    try:
        os.write(status_fd, b"R")  # ready: the worker hands the entry only to a ready one
    except OSError:  # the worker let it go meanwhile
        os._exit(0)
    cwd, argv, env = _command(command_fd)
    os.chdir(cwd)
    script = os.fsdecode(argv[1])
    directory = os.path.dirname(os.path.realpath(script))
    if not (_same_environment(env) and os.path.isfile(script)) or _shadowed(directory, ahead):
        _exec(cwd, argv, env, status_fd)
    if env.get(COMMIT) != os.environb.get(COMMIT):
        os.environb[COMMIT] = env[COMMIT]
    sys.argv = [os.fsdecode(a) for a in argv[1:]]
    if not getattr(sys.flags, "safe_path", False):
        sys.path.insert(0, directory)
    os.close(status_fd)  # the entry runs: as an exec would have closed it
    _run(script)


def _same_environment(env: "dict[bytes, bytes]") -> bool:
    """The entry's environment is the one this interpreter started with (as exec gave
    it: before Python's own changes, such as its locale coercion), but for the commit,
    which the checkout told after the start."""
    with open("/proc/self/environ", "rb") as given:
        started = dict(v.split(b"=", 1) for v in given.read().split(b"\0") if b"=" in v)
    return started.keys() == env.keys() and all(
        started[k] == v for k, v in env.items() if k != COMMIT
    )


def _shadowed(directory: str, ahead: "set[str]") -> bool:
    """Whether the script's directory has a module (or package, or anything of the
    name) that the script would import from there, not what was imported ahead."""
    try:
        names = os.listdir(directory)
    except OSError:
        return True
    return any(name.partition(".")[0] in ahead for name in names)


def _run(script: str) -> None:
    """Run `script` as `__main__`, as the interpreter runs a script."""
    import types

    path = os.path.abspath(script)
    main = types.ModuleType("__main__")
    # a script's __main__: its file, and a loader of it, no spec, no package
    loader = type(globals()["__loader__"])("__main__", path)  # this file's own: a script's
    main.__dict__.update(__file__=path, __cached__=None, __loader__=loader)
    main.__builtins__ = __builtins__  # type: ignore[attr-defined]
    sys.modules["__main__"] = main
    try:
        with open(path, "rb") as source:
            code = compile(source.read(), path, "exec", dont_inherit=True)
    except SyntaxError as e:  # the script's own: shown without a traceback, as Python does
        sys.excepthook(type(e), e.with_traceback(None), None)
        sys.exit(1)
    try:
        exec(code, main.__dict__)
    except SystemExit:
        raise
    except BaseException as e:  # the traceback from the script's frame on, as Python shows
        tb = e.__traceback__
        tb = tb.tb_next if tb is not None else tb
        sys.excepthook(type(e), e.with_traceback(tb), tb)
        if isinstance(e, KeyboardInterrupt):  # killed by SIGINT, as Python exits then
            import signal

            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        sys.exit(1)


if __name__ == "__main__":
    if sys.argv[1] == "warm":
        # what is on sys.path for this file is not the script's: its directory comes
        # first when the script runs (unless safe_path)
        if sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(
            os.path.realpath(__file__)
        ):
            del sys.path[0]
        warm(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
