"""save_figure writes publication copies; synthetic figures carry their label."""

import pytest
from matplotlib.figure import Figure

from parotidlib.report.figures import SYNTHETIC_FOOTER, mark_synthetic, save_figure


def _figure():
    fig = Figure()
    fig.add_subplot().plot([0, 1], [0, 1])
    return fig


def test_png_at_300_dpi_and_pdf(tmp_path):
    from PIL import Image

    png, pdf = save_figure(_figure(), tmp_path, "fig_x")
    assert png == tmp_path / "figures" / "fig_x.png" and pdf.read_bytes()[:4] == b"%PDF"
    dpi = Image.open(png).info["dpi"]
    assert round(dpi[0]) == 300
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["fig_x.pdf", "fig_x.png"]


def test_synthetic_label_is_stamped_once(tmp_path):
    fig = _figure()
    save_figure(fig, tmp_path, "a", synthetic=True)
    mark_synthetic(fig)
    assert [t.get_text() for t in fig.texts] == [SYNTHETIC_FOOTER]
    plain = _figure()
    save_figure(plain, tmp_path, "b")
    assert plain.texts == []


@pytest.mark.parametrize("name", ["", "../x", ".hidden"])
def test_bad_names_are_refused(tmp_path, name):
    with pytest.raises(ValueError, match="name"):
        save_figure(_figure(), tmp_path, name)
