"""Trace-time patches: NumPy entry points that never reach a tracer's protocol methods are replaced by
tracegrad's versions while a trace is open.

Some NumPy calls cannot be intercepted through `__array_function__` / `__array_ufunc__`: the C
methods of `numpy.random.Generator` / `RandomState` and the module functions bound to NumPy's global
RandomState (tracegrad.draws), NumPy functions that convert an argument with `np.asarray` before
they dispatch (`np.full`, `np.take`'s indices, ...) and `ndarray[...]` with traced indices
(tracegrad.numpy.plain). Those modules register `Patch` objects here; the patches are applied when
the first root builder (a builder with no parent, in any thread) is entered and restored when the
last one exits (trace.ROOT_HOOKS). A replacement checks `current_builder()` itself, so code that is
not tracing meanwhile (another thread, an impl running under `no_trace`) gets NumPy's behaviour, at
the cost of one Python call.

Three kinds of patch:
  ModulePatch     module attributes (what `np.full` or `np.random.normal` resolve to at call time)
  TypeDictPatch   entries of a C type's dict: the types are immutable, so the dict that
                  `type.__dict__` proxies is updated in place and `PyType_Modified` drops the
                  interpreter's method caches (`rng.normal` is then looked up anew)
  SubscriptPatch  `ndarray[...]`: a static type's subscript slot is not looked up in its dict, so
                  the slot is pointed at CPython's generic slot function, which calls the dict's
                  `__getitem__` (validated against the type's layout before use; if the layout is
                  not the expected one the patch stays off and `ndarray[tracer]` raises as before)
Per-root hooks (`add_root_hook`) also run for every root builder: draws.py opens a session there.

Cost (measured on the 2-core test machine): applying and restoring everything takes ~35-45 us per
outermost trace or eager call, and a NumPy array is indexed ~0.45 us slower while a compiling trace
is open. Each TypeDictPatch gives its type a new version tag; newer CPythons may stop giving a type
new tags after many changes (lookups on it are then not cached), which would make attribute access
on ndarray slower after thousands of traces or eager calls.
"""
from __future__ import annotations

import ctypes
import gc
import threading

from . import trace

_PyType_Modified = ctypes.pythonapi.PyType_Modified
_PyType_Modified.argtypes = [ctypes.py_object]
_PyType_Modified.restype = None


def type_dict(cls) -> dict:
    """The dict behind `cls.__dict__` (a read-only mappingproxy for every type)."""
    (d,) = [r for r in gc.get_referents(cls.__dict__) if type(r) is dict]
    return d


class ModulePatch:
    def __init__(self, module, replacements: dict):
        self.dict, self.new, self.old = vars(module), dict(replacements), {}

    def apply(self):
        # the module's dict directly (setattr costs 10x more); the originals are read afresh each
        # time, so a function monkeypatched between traces is restored as it was
        d = self.dict
        self.old = {name: d[name] for name in self.new}
        d.update(self.new)

    def restore(self):
        self.dict.update(self.old)


class TypeDictPatch:
    def __init__(self, cls, replacements: dict):
        self.cls, self.dict, self.new, self.old = cls, type_dict(cls), dict(replacements), {}

    def apply(self):
        d = self.dict
        self.old = {name: d[name] for name in self.new}
        d.update(self.new)
        _PyType_Modified(self.cls)

    def restore(self):
        self.dict.update(self.old)
        _PyType_Modified(self.cls)


# ---------------------------------------------------------------- ndarray's subscript slot

class _TypeHead(ctypes.Structure):
    """The start of CPython's PyTypeObject (stable layout of a release build) up to tp_as_mapping."""
    _fields_ = [("ob_refcnt", ctypes.c_ssize_t), ("ob_type", ctypes.c_void_p),
                ("ob_size", ctypes.c_ssize_t), ("tp_name", ctypes.c_char_p),
                ("tp_basicsize", ctypes.c_ssize_t), ("tp_itemsize", ctypes.c_ssize_t),
                ("tp_dealloc", ctypes.c_void_p), ("tp_vectorcall_offset", ctypes.c_ssize_t),
                ("tp_getattr", ctypes.c_void_p), ("tp_setattr", ctypes.c_void_p),
                ("tp_as_async", ctypes.c_void_p), ("tp_repr", ctypes.c_void_p),
                ("tp_as_number", ctypes.c_void_p), ("tp_as_sequence", ctypes.c_void_p),
                ("tp_as_mapping", ctypes.c_void_p)]


class _Mapping(ctypes.Structure):
    _fields_ = [("mp_length", ctypes.c_void_p), ("mp_subscript", ctypes.c_void_p),
                ("mp_ass_subscript", ctypes.c_void_p)]


def _mapping(cls):
    head = _TypeHead.from_address(id(cls))
    if head.tp_basicsize != cls.__basicsize__ or not head.tp_as_mapping:
        return None
    return _Mapping.from_address(head.tp_as_mapping)


def _wrapped_function(descriptor) -> int:
    """The C function a slot wrapper (`ndarray.__dict__['__getitem__']`) calls: its `d_wrapped`,
    after PyDescr_COMMON (object head, d_type, d_name, d_qualname) and d_base."""
    return ctypes.c_void_p.from_address(id(descriptor) + 6 * ctypes.sizeof(ctypes.c_void_p)).value


class _Probe:
    def __getitem__(self, key):
        return key


class SubscriptPatch:
    """`cls[key]` calls `getitem(self, key, original)` while applied (`original(self, key)` is the
    type's own subscript)."""

    def __init__(self, cls, getitem):
        self.cls, self.dict = cls, type_dict(cls)
        self.original = self.dict["__getitem__"]
        self.available = self._validate()
        if self.available:
            original = self.original

            def __getitem__(self, key):
                return getitem(self, key, original)
            self.entry = __getitem__
            self.mapping = _mapping(cls)
            self.old_slot, self.generic_slot = self.mapping.mp_subscript, _mapping(_Probe).mp_subscript

    def _validate(self) -> bool:
        try:
            mine, probe = _mapping(self.cls), _mapping(_Probe)
            return (mine is not None and probe is not None and bool(probe.mp_subscript)
                    and _TypeHead.from_address(id(self.cls)).tp_name.decode().endswith(self.cls.__name__)
                    and _wrapped_function(self.original) == mine.mp_subscript)
        except Exception:   # noqa: BLE001  (an unexpected interpreter: leave the type alone)
            return False

    def apply(self):
        if self.available:
            self.dict["__getitem__"] = self.entry
            _PyType_Modified(self.cls)
            self.mapping.mp_subscript = self.generic_slot

    def restore(self):
        if self.available:
            self.mapping.mp_subscript = self.old_slot
            self.dict["__getitem__"] = self.original
            _PyType_Modified(self.cls)


# ---------------------------------------------------------------- applying them around root traces

_PATCHES = {False: [], True: []}     # compiling_only -> patches
_ROOT_HOOKS: list = []               # hook(root builder) -> done(exception or None) | None
_lock = threading.Lock()
_open = {False: 0, True: 0}          # open root builders: all of them, the compiling (non-eager) ones


def register(patch, compiling_only: bool = False) -> None:
    """Apply `patch` while a root builder is open (with `compiling_only`, a non-eager one: eager
    tracers convert to their values where NumPy needs them, e.g. integer indices)."""
    _PATCHES[compiling_only].append(patch)


def add_root_hook(hook) -> None:
    _ROOT_HOOKS.append(hook)


def _acquire(kinds):
    with _lock:
        for k in kinds:
            if _open[k] == 0:
                for p in _PATCHES[k]:
                    p.apply()
            _open[k] += 1


def _release(kinds):
    with _lock:
        for k in reversed(kinds):
            _open[k] -= 1
            if _open[k] == 0:
                for p in reversed(_PATCHES[k]):
                    p.restore()


def _on_root(builder):
    kinds = (False,) if builder.eager else (False, True)
    _acquire(kinds)
    dones = []
    try:
        for hook in _ROOT_HOOKS:
            done = hook(builder)
            if done is not None:
                dones.append(done)
    except BaseException:
        _release(kinds)
        raise

    def done(exc):
        error = None
        try:
            for d in reversed(dones):
                try:
                    d(exc)
                except BaseException as e:   # noqa: BLE001  (every hook ends; the first error is raised)
                    error = error or e
        finally:
            _release(kinds)
        if error is not None:
            raise error
    return done


def active() -> bool:
    """Are the patches applied now?"""
    return _open[False] > 0


trace.ROOT_HOOKS.append(_on_root)
