# Kelpie's Python shim: Python imports it at start (`sitecustomize`, on the PYTHONPATH Kelpie
# gives the apps that serve a socket it owns). It changes nothing until the app imports uvicorn,
# and then only how uvicorn's HTTP connections end when it stops: as a drain, the way Kelpie's
# Node shim ends Node's, so that a reload loses no request.
#
# uvicorn, stopping, closes every connection that has no request in progress at once: an idle
# keep-alive connection a client is sending its next request on, and one accepted a moment
# before, whose request has not been read yet. Both requests fail. Here such a connection is
# kept for a moment instead: a request that comes on it meanwhile is answered, with
# `Connection: close`, and one that stays idle is closed after LINGER seconds. The listening
# socket is closed first, as before, so the app's other instances take every new connection.
#
# KELPIE_PYTHON_SHIM=0 in the app's environment turns it off. The app's own sitecustomize, if
# it has one further on the path, is run after this one.

import os
import sys

LINGER = 1.0


CLOSE = (b"connection", b"close")


def _close_after(cycle):
    """The response of `cycle` says `Connection: close`, and the connection closes once it is
    sent: a client then opens a new connection for its next request, to another instance,
    instead of sending it on one that closes under it. (uvicorn's h11 protocol adds the header
    only when the request had it; the httptools one adds it itself.)"""
    cycle.keep_alive = False
    headers = cycle.scope.get("headers") if isinstance(getattr(cycle, "scope", None), dict) else None
    if isinstance(headers, list) and CLOSE not in headers:
        headers.append(CLOSE)


def _drain(protocol_class, close_now):
    """Make `protocol_class.shutdown` drain: `close_now(protocol)` is uvicorn's own closing of
    an idle connection, done after LINGER unless a request came meanwhile."""
    original_shutdown = protocol_class.shutdown

    def close_if_idle(self):
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            close_now(self, original_shutdown)

    def shutdown(self):
        self._kelpie_draining = True
        if self.cycle is None or self.cycle.response_complete:
            self.loop.call_later(LINGER, close_if_idle, self)
        else:
            _close_after(self.cycle)

    protocol_class.shutdown = shutdown


def _close_after_next_response(protocol_class, method_name):
    """After `method_name` (the one that starts a request's cycle), a draining connection's
    response says `Connection: close`, and the connection closes once it is sent."""
    original = getattr(protocol_class, method_name)

    def wrapped(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        cycle = getattr(self, "cycle", None)
        if getattr(self, "_kelpie_draining", False) and cycle is not None:
            _close_after(cycle)
        return result

    setattr(protocol_class, method_name, wrapped)


def _patch_h11(module):
    protocol = getattr(module, "H11Protocol", None)
    if protocol is None or not hasattr(protocol, "shutdown"):
        return
    _drain(protocol, lambda self, original: original(self))
    _close_after_next_response(protocol, "handle_events")


def _patch_httptools(module):
    protocol = getattr(module, "HttpToolsProtocol", None)
    if protocol is None or not hasattr(protocol, "shutdown"):
        return
    _drain(protocol, lambda self, original: original(self))
    _close_after_next_response(protocol, "on_headers_complete")


_PATCHES = {
    "uvicorn.protocols.http.h11_impl": _patch_h11,
    "uvicorn.protocols.http.httptools_impl": _patch_httptools,
}


def _install():
    import importlib.abc

    class AfterImport(importlib.abc.MetaPathFinder):
        """Runs a patch on a module right after the module itself has run."""

        def find_spec(self, fullname, path, target=None):
            patch = _PATCHES.get(fullname)
            if patch is None:
                return None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is None or spec.loader is None:
                    continue
                exec_module = spec.loader.exec_module

                def patched(module, exec_module=exec_module, patch=patch):
                    exec_module(module)
                    try:
                        patch(module)
                    except Exception:  # another uvicorn: left as it is
                        pass

                spec.loader.exec_module = patched
                return spec
            return None

    sys.meta_path.insert(0, AfterImport())


def _run_the_apps_own():
    """Python imports the first `sitecustomize` on its path only: this one. The app's own, if
    it has one further on, is run too."""
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if not entry or os.path.abspath(entry) == here:
            continue
        candidate = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(candidate):
            import importlib.util

            spec = importlib.util.spec_from_file_location("_app_sitecustomize", candidate)
            if spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
            return


if os.environ.get("KELPIE_PYTHON_SHIM") != "0":
    _install()
_run_the_apps_own()
