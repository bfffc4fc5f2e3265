"""An explorer over precomputed figures: sliders and checkboxes that switch stored states in the
browser (no kernel needed), and run a missing state live when a kernel is there.

:class:`Explorer` takes a list of controls, a dict of precomputed states (one figure per point of
the controls' grid, not necessarily every point) and the point shown first. Displayed in a
notebook (``_repr_mimebundle_``), one output carries three renderings:

- ``text/html``: a self-contained explorer (inline ``<script>``, every state's PNG as a base64
  data URI, ``<input type=range>`` over each slider's values, ``<input type=checkbox>``). It needs
  no kernel, no CDN and no widget manager: the site (myst-nb renders ``text/html``), an offline
  copy, a trusted notebook, Colab. Moving a control shows the stored figure of that point, or
  the line "not precomputed: run this notebook to train it" (and no figure) where none was
  stored. Without JavaScript (an untrusted notebook) the default state's figure shows.
- ``image/png``: the default state's figure (GitHub, nbviewer, any viewer without HTML).
- ``application/vnd.jupyter.widget-view+json`` (only in a running IPython kernel, with
  ipywidgets): the same controls as ipywidgets, driven by Python; for a point without a stored
  state a **Run it live** button calls ``live(point_dict)`` and keeps its figure (a later
  rendering of the explorer includes it).

Example::

    >>> import matplotlib
    >>> from matplotlib.figure import Figure
    >>> def fig(lam):
    ...     f = Figure(figsize=(2, 1)); f.subplots().set_title(f"lambda = {lam}"); return f
    >>> ex = Explorer([{"name": "lam", "label": "λ", "values": [1, 25, 50]},
    ...                {"name": "crop", "label": "crop", "values": [True, False]}],
    ...               {(25, True): fig(25), (50, True): fig(50)}, default=(25, True))
    >>> sorted(ex._repr_mimebundle_(include=None, exclude=None))[:3]
    ['image/png', 'text/html', 'text/plain']
    >>> ex.select(lam=1).message
    'not precomputed: run this notebook to train it'
"""

from __future__ import annotations

import base64
import html
import io
import json
import numbers
import sys
import threading
from typing import Any, Callable, Optional, Sequence

__all__ = ["Explorer", "NOT_PRECOMPUTED"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NOT_PRECOMPUTED = "not precomputed: run this notebook to train it"
NOT_PRECOMPUTED_LIVE = "not precomputed: press Run it live to train it"

# The page side: binds every explorer of the page not yet bound (idempotent, so one script per
# explorer is harmless), swaps the figure's data URI on input, and says where no state is stored.
_SCRIPT = r"""
(function () {
  function bind(root) {
    if (root.getAttribute("data-bound")) return;
    root.setAttribute("data-bound", "1");
    var data = JSON.parse(root.querySelector("script.vx-data").textContent);
    var img = root.querySelector("img.vx-figure"), msg = root.querySelector(".vx-missing");
    var first = img.getAttribute("src"), inputs = root.querySelectorAll("input[data-control]");
    function index(input) {
      if (input.type === "checkbox") return data.controls[+input.getAttribute("data-i")].values.indexOf(input.checked);
      return +input.value;
    }
    function show() {
      var key = [];
      inputs.forEach(function (input) {
        var i = index(input), c = data.controls[+input.getAttribute("data-i")];
        key.push(i);
        var out = root.querySelector('output[data-i="' + input.getAttribute("data-i") + '"]');
        if (out) out.textContent = c.labels[i];
      });
      key = key.join(",");
      root.setAttribute("data-point", key);
      var src = key === data.default ? first : data.states[key];
      if (src) {
        if (src !== first) src = "data:image/png;base64," + src;
        img.setAttribute("src", src);
        img.hidden = false;
        msg.hidden = true;
        root.setAttribute("data-shown", key);
      } else {
        img.hidden = true;
        msg.hidden = false;
        root.setAttribute("data-shown", "");
      }
    }
    inputs.forEach(function (input) {
      input.addEventListener("input", show);
      input.addEventListener("change", show);
    });
    show();
  }
  document.querySelectorAll(".vicreg-explorer").forEach(bind);
})();
"""

_STYLE = (
    ".vicreg-explorer{border:1px solid #ccc;border-radius:4px;padding:.5em;margin:.5em 0}"
    ".vicreg-explorer .vx-controls{display:flex;flex-wrap:wrap;gap:.3em 1.5em;align-items:center;margin-bottom:.4em}"
    ".vicreg-explorer label{display:inline-flex;align-items:center;gap:.4em;margin:0}"
    ".vicreg-explorer input[type=range]{width:9em}"
    ".vicreg-explorer output{min-width:2.5em;font-variant-numeric:tabular-nums}"
    ".vicreg-explorer img.vx-figure{max-width:100%;height:auto;display:block}"
    ".vicreg-explorer .vx-missing{font-weight:bold;padding:1em 0}"
    ".vicreg-explorer [hidden]{display:none!important}"
)


def _is_checkbox(values: Sequence) -> bool:
    return len(values) == 2 and all(isinstance(v, bool) for v in values) and set(values) == {True, False}


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def to_png(figure: Any) -> bytes:
    """PNG bytes of a matplotlib Figure (closed in pyplot if pyplot manages it) or of PNG bytes."""
    if isinstance(figure, (bytes, bytearray, memoryview)):
        data = bytes(figure)
        if not data.startswith(PNG_MAGIC):
            raise ValueError(f"state is {len(data)} bytes that are not a PNG (no PNG signature)")
        return data
    savefig = getattr(figure, "savefig", None)
    if savefig is None:
        raise TypeError(f"a state must be a matplotlib Figure or PNG bytes, not {type(figure).__name__}")
    buf = io.BytesIO()
    savefig(buf, format="png")
    if "matplotlib.pyplot" in sys.modules:  # a pyplot figure would also be shown at the cell's end
        sys.modules["matplotlib.pyplot"].close(figure)
    return buf.getvalue()


def _in_kernel() -> bool:
    """True in a running IPython kernel (JupyterLab, Colab, nbclient), False in a script or test."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and getattr(shell, "kernel", None) is not None


class Explorer:
    """Controls over a grid of points, each point's figure precomputed or trained live.

    Args:
        controls: ``[{"name": str, "label": str, "values": list}, ...]``. Values ``[True, False]``
            (either order) make a checkbox; any other list (numbers, distinct) a slider over
            those discrete values, in the given order.
        states: ``{point: Figure or PNG bytes}``, a point being a tuple of values in the order of
            ``controls``. Points may be missing (then the explorer says "not precomputed").
        default: the point shown first; it must have a state.
        live: ``live(point_dict) -> Figure or PNG bytes`` (``point_dict`` = ``{name: value}``),
            called by **Run it live** in a running kernel for a point without a state; its
            result is kept in ``states``.
        title: a line above the controls.

    Attributes: ``point`` (the current point, a tuple), ``states`` (``{point: PNG bytes}``),
    ``message`` (the line shown instead of a figure, ``""`` when a figure shows), ``widget``
    (the ipywidgets view, built on first use).
    """

    def __init__(
        self,
        controls: list[dict],
        states: dict,
        default: tuple,
        *,
        live: Optional[Callable[[dict], Any]] = None,
        title: str = "",
    ):
        self.controls = self._check_controls(controls)
        self.names = [c["name"] for c in self.controls]
        if not isinstance(states, dict) or not states:
            raise ValueError("states must be a non-empty dict {point tuple: Figure or PNG bytes}")
        self.states: dict[tuple, bytes] = {self._check_point(p, "a states key"): to_png(f) for p, f in states.items()}
        self.default = self._check_point(default, "default")
        if self.default not in self.states:
            raise ValueError(f"default point {self.default} has no state in states")
        if live is not None and not callable(live):
            raise TypeError(f"live must be a callable(point_dict) -> Figure or PNG bytes, not {type(live).__name__}")
        self.live, self.title = live, str(title)
        self.point = self.default
        self.message = ""
        self.widget = None
        self.thread: Optional[threading.Thread] = None
        self._running = False
        self._lock = threading.Lock()

    # -- validation

    @staticmethod
    def _check_controls(controls) -> list[dict]:
        if not isinstance(controls, (list, tuple)) or not controls:
            raise ValueError("controls must be a non-empty list of {'name', 'label', 'values'} dicts")
        seen = set()
        out = []
        for i, c in enumerate(controls):
            if not isinstance(c, dict) or not {"name", "label", "values"} <= set(c):
                raise ValueError(f"control {i} must be a dict with 'name', 'label' and 'values', got {c!r}")
            name, values = c["name"], list(c["values"])
            if not isinstance(name, str) or not name or name in seen:
                raise ValueError(f"control {i}: name must be a non-empty string, unique, got {name!r}")
            seen.add(name)
            if not values:
                raise ValueError(f"control {name!r}: values is empty")
            checkbox = _is_checkbox(values)
            if not checkbox:
                bad = [v for v in values if isinstance(v, bool) or not isinstance(v, numbers.Real)]
                if bad:
                    raise ValueError(
                        f"control {name!r}: a slider's values must be numbers (a checkbox's exactly True and False), "
                        f"got {bad[0]!r}"
                    )
                values = [int(v) if isinstance(v, numbers.Integral) else float(v) for v in values]  # numpy -> JSON
                if len(set(values)) != len(values):
                    raise ValueError(f"control {name!r}: values repeat: {values}")
            out.append({"name": name, "label": str(c["label"]), "values": values, "checkbox": checkbox})
        return out

    def _check_point(self, point, what: str) -> tuple:
        if not isinstance(point, tuple) or len(point) != len(self.controls):
            raise ValueError(
                f"{what} must be a tuple of {len(self.controls)} values ({', '.join(self.names)}), got {point!r}"
            )
        for c, v in zip(self.controls, point):
            if not any(v == x and isinstance(v, bool) == isinstance(x, bool) for x in c["values"]):
                raise ValueError(f"{what} {point!r}: {v!r} is not one of control {c['name']!r}'s values {c['values']}")
        return tuple(point)

    def _indices(self, point: tuple) -> str:
        """The page's key of a point: the index of each value in its control's values, comma-joined."""
        idx = []
        for c, v in zip(self.controls, point):
            idx.append(
                next(i for i, x in enumerate(c["values"]) if x == v and isinstance(x, bool) == isinstance(v, bool))
            )
        return ",".join(map(str, idx))

    # -- the Python side (tests, notebook cells, the live widget)

    def point_dict(self, point: Optional[tuple] = None) -> dict:
        """``{name: value}`` of ``point`` (default: the current one)."""
        return dict(zip(self.names, self.point if point is None else point))

    def select(self, **values) -> "Explorer":
        """Move controls by name (``select(lam=50, crop=False)``), as a reader's moves would; returns self."""
        unknown = set(values) - set(self.names)
        if unknown:
            raise ValueError(f"no control named {sorted(unknown)[0]!r}; controls: {self.names}")
        point = self._check_point(tuple(values.get(n, v) for n, v in zip(self.names, self.point)), "selected point")
        if self.widget is not None:
            for n, w in self._inputs.items():
                if n in values:
                    w.value = values[n]  # the widget's observer calls _show
        self.point = point
        self._show()
        return self

    @property
    def png(self) -> Optional[bytes]:
        """The PNG of the current point, None where it has no state."""
        return self.states.get(self.point)

    def _show(self) -> None:
        found = self.point in self.states
        self.message = (
            "" if found else (NOT_PRECOMPUTED_LIVE if self.live is not None and self.widget else NOT_PRECOMPUTED)
        )
        if self.widget is None:
            return
        if found:
            self._image.value = self.states[self.point]
            self._image.layout.display = None
        else:
            self._image.layout.display = "none"
        self._hint.value = html.escape(self.message)
        if self._button is not None:
            self._button.disabled = found or self._running

    # -- live runs

    def run_live(self, button=None, *, wait: bool = False) -> Optional[bytes]:
        """Train (``live``) the current point if it has no state; in a thread unless ``wait``.

        Returns the new PNG when ``wait`` (None if ignored: no ``live``, a run going, or the
        point already stored)."""
        if self.live is None:
            raise RuntimeError("this explorer has no live function (Explorer(..., live=callable))")
        with self._lock:
            if self._running or self.point in self.states:
                return None
            self._running = True
        point = self.point
        if self.widget is not None:
            self._button.disabled, self._button.description = True, "Training…"
            self._hint.value = "training " + html.escape(self._point_text(point)) + "…"
        if wait or self.widget is None:
            return self._finish(point)
        self.thread = threading.Thread(target=self._finish, args=(point,), daemon=True)
        self.thread.start()
        return None

    def _finish(self, point: tuple) -> Optional[bytes]:
        png, problem = None, ""
        try:
            png = to_png(self.live(self.point_dict(point)))
            self.states[point] = png
        except Exception as e:  # shown in the panel: a thread's exception would otherwise vanish
            problem = f"the live run failed: {type(e).__name__}: {e}"
        with self._lock:
            self._running = False
        if self.widget is not None:
            self._button.description = "Run it live"
        self._show()
        if problem:
            self.message = problem
            if self.widget is not None:
                self._hint.value = html.escape(problem)
        return png

    def _point_text(self, point: tuple) -> str:
        return ", ".join(f"{c['label']} {_label(v)}" for c, v in zip(self.controls, point))

    # -- renderings

    def build_widget(self):
        """The ipywidgets view (SelectionSlider / Checkbox per control, figure, hint, button)."""
        if self.widget is not None:
            return self.widget
        import ipywidgets as w

        self._inputs = {}
        for c, v in zip(self.controls, self.point):
            if c["checkbox"]:
                self._inputs[c["name"]] = w.Checkbox(value=v, description=c["label"], indent=False)
            else:
                self._inputs[c["name"]] = w.SelectionSlider(
                    options=[(_label(x), x) for x in c["values"]],
                    value=v,
                    description=c["label"],
                    continuous_update=True,
                )
        # align_self: in the VBox (a flex column) an image would otherwise be stretched to its width
        self._image = w.Image(format="png", layout=w.Layout(max_width="100%", align_self="flex-start"))
        self._hint = w.HTML("")
        self._button = None
        rows = [w.HBox(list(self._inputs.values()), layout=w.Layout(flex_flow="row wrap"))]
        if self.live is not None:
            self._button = w.Button(description="Run it live", button_style="primary", icon="play")
            self._button.on_click(self.run_live)
            rows.append(self._button)
        rows += [self._hint, self._image]
        if self.title:
            rows.insert(0, w.HTML(f"<b>{html.escape(self.title)}</b>"))
        self.widget = w.VBox(rows)

        def moved(change):
            self.point = tuple(self._inputs[n].value for n in self.names)
            self._show()

        for control in self._inputs.values():
            control.observe(moved, names="value")
        self._show()
        return self.widget

    def to_html(self) -> str:
        """The self-contained HTML explorer (no kernel, no network): controls, figure, states."""
        default_key = self._indices(self.default)
        data = {
            "default": default_key,
            "controls": [
                {"name": c["name"], "values": c["values"], "labels": [_label(v) for v in c["values"]]}
                for c in self.controls
            ],
            "states": {
                self._indices(p): base64.b64encode(png).decode("ascii")
                for p, png in self.states.items()
                if p != self.default
            },
        }
        controls = []
        for i, (c, v) in enumerate(zip(self.controls, self.default)):
            label = html.escape(c["label"])
            name = html.escape(c["name"])
            if c["checkbox"]:
                checked = " checked" if v else ""
                controls.append(
                    f'<label><input type="checkbox" data-control="{name}" data-i="{i}"{checked}> {label}</label>'
                )
            else:
                j = c["values"].index(v)
                controls.append(
                    f'<label>{label} <input type="range" data-control="{name}" data-i="{i}" min="0" '
                    f'max="{len(c["values"]) - 1}" step="1" value="{j}" aria-label="{label}">'
                    f' <output data-i="{i}">{html.escape(_label(v))}</output></label>'
                )
        title = f'<div class="vx-title"><b>{html.escape(self.title)}</b></div>' if self.title else ""
        default_png = base64.b64encode(self.states[self.default]).decode("ascii")
        payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
        return (
            f'<div class="vicreg-explorer" data-default="{default_key}"><style>{_STYLE}</style>{title}'
            f'<div class="vx-controls">{"".join(controls)}</div>'
            f'<img class="vx-figure" alt="{html.escape(self._point_text(self.default))}" '
            f'src="data:image/png;base64,{default_png}">'
            f'<p class="vx-missing" hidden>{NOT_PRECOMPUTED}</p>'
            f'<script type="application/json" class="vx-data">{payload}</script>'
            f"<script>{_SCRIPT}</script></div>"
        )

    def _repr_mimebundle_(self, include=None, exclude=None):
        controls = ", ".join(f"{c['label']} ({'checkbox' if c['checkbox'] else 'slider'})" for c in self.controls)
        bundle = {
            "text/plain": f"[explorer{': ' + self.title if self.title else ''}; controls {controls}; "
            f"{len(self.states)} precomputed states; open the page or run the notebook to use it]",
            "text/html": self.to_html(),
            "image/png": base64.b64encode(self.states[self.default]).decode("ascii"),
        }
        if _in_kernel():
            try:
                widget = self.build_widget()
            except ImportError:
                return bundle
            view = widget._repr_mimebundle_()
            bundle.update({k: v for k, v in view.items() if k != "text/plain"})
        return bundle
