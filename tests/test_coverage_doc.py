"""docs/coverage.md is generated from the rule registry and must be current."""
from _coverage_tool import ROOT, load as _tool


def test_coverage_table_is_current_and_complete():
    tool = _tool()
    text = tool.render()
    assert (ROOT / "docs" / "coverage.md").read_text() == text, "run: python tools/coverage.py"
    readme = (ROOT / "README.md").read_text()
    assert tool.readme_with(text, readme) == readme, "README table is stale: run python tools/coverage.py"
    rows = [l for l in text.splitlines() if l.startswith("| `numpy.")]
    assert len(rows) > 150
    # every registered function traces on some probe and has all three kinds of rule
    assert not [r for r in rows if "| ? |" in r or "| NO |" in r]
    scipy_rows = [l for l in text.splitlines() if l.startswith("| `scipy.")]
    assert {"| `scipy.special.gammaln`", "| `scipy.stats.norm.logpdf`", "| `scipy.signal.convolve`",
            "| `scipy.integrate.odeint`"} <= {r.split(" |")[0] for r in scipy_rows}
    assert not [r for r in scipy_rows if "| ? |" in r or "| NO |" in r]
