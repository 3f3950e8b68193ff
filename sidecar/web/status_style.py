"""The status page's style sheet, inline in the page: no external asset to load or allow.

States are words first; a colour only repeats them (``.good``, ``.bad``, ``.warn``,
``.held``). Charts draw their series in blue, a rule's threshold dashed red, the memory
limit dashed in the text colour.
"""

from __future__ import annotations

__all__ = ["CSS"]

CSS = """
:root{--fg:#1f2328;--mute:#59636e;--line:#d1d9e0;--bg:#fff;--head:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;padding:12px 16px;font:14px/1.4 system-ui,sans-serif;color:var(--fg);
 background:var(--bg)}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:8px 16px;
 border-bottom:2px solid var(--line);padding-bottom:8px}
h1{font-size:20px;margin:0}
h2{font-size:16px;margin:16px 0 6px}
h3{font-size:14px;margin:10px 0 4px}
section{overflow-x:auto}
.summary{display:flex;flex-wrap:wrap;gap:6px 12px;margin:0;padding:0;list-style:none}
.muted,.gen{color:var(--mute)}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(420px,100%),1fr));gap:0 24px}
table{border-collapse:collapse;width:100%;margin:0 0 4px}
th,td{border:1px solid var(--line);padding:3px 6px;text-align:left;vertical-align:top}
thead th,table.kv th{background:var(--head);font-weight:600}
table.kv th{width:11em;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code,.lbl{font:12px/1.3 ui-monospace,monospace;overflow-wrap:anywhere}
.lbl{display:inline-block;background:var(--head);border:1px solid var(--line);
 border-radius:3px;padding:0 4px;margin:1px 2px 1px 0}
.expr{display:block;color:var(--mute)}
.err{color:#a40e26;overflow-wrap:anywhere}
.badge{display:inline-block;min-width:4.5em;text-align:center;padding:0 6px;
 border-radius:3px;font-weight:600;color:#fff;background:#6e7781}
.good{background:#1a7f37}.bad{background:#cf222e}.warn{background:#9a6700}.held{background:#8250df}
.empty{color:var(--mute);font-style:italic;margin:4px 0}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(380px,100%),1fr));gap:12px}
figure{margin:0;border:1px solid var(--line);padding:4px 6px}
figcaption{font-size:12px;overflow-wrap:anywhere}
svg.chart{display:block;width:100%;height:auto}
svg .frame{fill:none;stroke:var(--line)}
svg .line{fill:none;stroke:#0969da;stroke-width:1.5;stroke-linejoin:round}
svg .dot{fill:#0969da}
svg line.ref{stroke-width:1;stroke-dasharray:4 3}
svg line.threshold{stroke:#cf222e}svg line.limit{stroke:#1f2328}
svg text.ref-label{font-size:10px}svg text.ref-label.threshold{fill:#a40e26}
.windows{margin:0 0 6px}.windows a{margin-right:8px}
svg text{font:11px ui-monospace,monospace;fill:var(--mute)}
"""
