"""The storyboard sheet: a PDF panel per shot with real text, and a PNG contact sheet."""

import datetime
import pathlib
import sys

import cv2
import numpy as np
import pytest

from standin.addon import board, edit_list
from standin.addon.edit_list import Rate, ShotInput, TakeInput

pypdf = pytest.importorskip("pypdf")
pytest.importorskip("fpdf")

COLOURS = {"SQ010_SH0010": (40, 40, 220), "SQ010_SH0020": (40, 200, 40)}  # BGR: red, green


def _cut(tmp_path: pathlib.Path, count: int = 3) -> tuple[edit_list.EditList, dict]:
    shots, images = [], {}
    for index in range(count):
        name = f"SQ010_SH{(index + 1) * 10:04d}"
        colour = COLOURS.get(name, (200, 120, 40))
        folder = tmp_path / name / "v001"
        folder.mkdir(parents=True)
        frame = index * 24 + 1
        cv2.imwrite(str(folder / f"{frame:04d}.png"), np.full((72, 128, 3), colour, np.uint8))
        take = TakeInput("v001", str(folder), {frame: str(folder / f"{frame:04d}.png")})
        shots.append(ShotInput(name, frame, frame + 23, lens=24.0 + 10 * index, size="MS", size_label="Medium",
                               action=f"Action of shot {index + 1}: Mara crosses to the window — slowly.",
                               notes=f"note {index + 1}" if index else "", take=take))
    missing = ShotInput("SQ010_SH9990", 900, 911, lens=50.0, size="CU", size_label="Close-up",
                        take=TakeInput("v002", str(tmp_path / "nowhere"), problem="SQ010_SH9990: its take is gone."))
    edit = edit_list.build(shots + [missing], Rate(24), 256, 108)
    for event in edit.events:
        images[event.shot] = event.source.files[0] if event.source.files else None
    return edit, images


def _text(path: pathlib.Path) -> tuple[list, str]:
    reader = pypdf.PdfReader(str(path))
    return reader.pages, "\n".join(page.extract_text() for page in reader.pages)


@pytest.mark.parametrize("font", [True, False], ids=["unicode-font", "built-in-helvetica"])
def test_pdf_has_a_panel_per_shot_with_its_texts(tmp_path, font):
    edit, images = _cut(tmp_path)
    sheet = board.sheet_from_edit(edit, "Kitchen Scene", "2.39:1", images, date="2026-03-01")
    path = board.write_pdf(sheet, tmp_path / "out" / "board.pdf", unicode_font=font)
    assert path.read_bytes()[:5] == b"%PDF-"
    pages, text = _text(path)
    assert len(pages) == 1
    assert sum(len(page.images) for page in pages) == 3  # three pictures; the missing shot has none
    for number, event in enumerate(edit.events, start=1):
        assert text.count(event.shot) == (1 if event.source.kind != "slate" else 2)  # + "MISSING — <shot>"
        assert f"{number}  {event.shot}" in text
    assert "MS Medium · 24 mm · 24 fr (1.0 s)" in text and "34 mm" in text and "CU Close-up · 50 mm" in text
    assert "Action of shot 2: Mara crosses to the window" in text
    assert "Notes: note 2" in text and "Notes: note 3" in text
    assert ("—" in text) == bool(font) and "slowly." in text
    assert "Kitchen Scene" in text and "Aspect 2.39:1" in text and "2026-03-01" in text
    assert f"Running time {edit.running_time} (00:00:03:12, 84 frames)" in text
    assert "MISSING" in text and "v001" in text
    assert not list(path.parent.glob(".*partial*"))


def test_many_shots_go_over_several_pages_and_tall_pictures_fit(tmp_path):
    edit, images = _cut(tmp_path, count=8)
    sheet = board.sheet_from_edit(edit, "Long", "9:16", images)
    sheet.ratio = 9 / 16
    pages, text = _text(board.write_pdf(sheet, tmp_path / "board.pdf"))
    assert len(pages) >= 2
    assert all(f"SQ010_SH{(i + 1) * 10:04d}" in text for i in range(8))
    assert f"Page 1 of {len(pages)}" in text
    assert datetime.date.today().isoformat() in text


def test_contact_sheet_shows_every_picture_in_order(tmp_path):
    edit, images = _cut(tmp_path)
    sheet = board.sheet_from_edit(edit, "Kitchen Scene", "2.39:1", images)
    path = board.write_contact_sheet(sheet, tmp_path / "board.png", thumb_width=200)
    pixels = cv2.imread(str(path))
    assert pixels is not None and pixels.shape[1] == 2 * 20 + 3 * 200 + 2 * 16
    # the first row holds the red then the green picture, where the layout puts them
    thumb_h = round(200 / sheet.ratio)
    top = 70 + 20 + thumb_h // 2
    red = pixels[top, 20 + 100]
    green = pixels[top, 20 + 200 + 16 + 100]
    assert tuple(red) == COLOURS["SQ010_SH0010"] and tuple(green) == COLOURS["SQ010_SH0020"]
    # the missing shot is a dark panel, not white paper
    second_row = 70 + 20 + thumb_h + 6 * 20 + 16 + 5
    assert pixels[second_row, 20 + 5].max() < 80


def test_plain_text_keeps_what_helvetica_can_draw():
    assert board.plain_text("MISSING — it’s “done”…") == 'MISSING - it\'s "done"...'
    assert board.plain_text("Café Ω") == "Café ?"
    assert board.plain_text("Café", "ascii") == "Cafe"


def test_without_fpdf2_the_pdf_says_what_to_install_and_the_png_still_works(tmp_path, monkeypatch):
    edit, images = _cut(tmp_path, count=1)
    sheet = board.sheet_from_edit(edit, "Kitchen Scene", "2.39:1", images)
    monkeypatch.setitem(sys.modules, "fpdf", None)  # as in a Blender whose Python lacks it
    with pytest.raises(board.BoardError, match="needs the fpdf2 package.*pip install fpdf2"):
        board.write_pdf(sheet, tmp_path / "board.pdf")
    assert not (tmp_path / "board.pdf").exists()
    assert cv2.imread(str(board.write_contact_sheet(sheet, tmp_path / "board.png"))) is not None
