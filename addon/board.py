# SPDX-License-Identifier: GPL-3.0-or-later
"""The storyboard sheet: a PDF and a PNG contact sheet, one panel per shot. Pure Python (no bpy).

A panel: the shot's picture (its active take, else the playblast of its blocking; a grey "MISSING"
box when it has none), its number and name, size, lens, duration, take, action and notes. A header
on every page: project, aspect ratio, frame rate, total running time, date and page.

The PDF is written with ``fpdf2`` (its text is real PDF text: searchable, copyable); the contact
sheet with OpenCV. Both are written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import datetime
import io
import os
import pathlib
import unicodedata
from dataclasses import dataclass, field

import cv2
import numpy as np

from . import edit_list


class BoardError(Exception):
    """The sheet cannot be made; the message says what to do."""


@dataclass
class Panel:
    number: int
    shot: str
    image: str | None
    size: str
    size_label: str
    lens: float
    frames: int
    seconds: float
    take: str
    action: str = ""
    notes: str = ""
    #: why there is no picture ('' when there is one)
    missing: str = ""

    @property
    def facts(self) -> str:
        """``WS Wide · 24 mm · 72 fr (3.0 s)``"""
        size = self.size
        if self.size_label and self.size_label != self.size:
            size = f"{self.size} {self.size_label}".strip()
        parts = [size] if size else []
        if self.lens:
            parts.append(f"{self.lens:g} mm")
        parts.append(f"{self.frames} fr ({self.seconds:.1f} s)")
        return " · ".join(parts)


@dataclass
class Sheet:
    project: str
    aspect: str
    ratio: float
    rate: str
    running_time: str
    total_timecode: str
    total_frames: int
    date: str
    panels: list[Panel] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return (f"Aspect {self.aspect} · {self.rate} · Running time {self.running_time} "
                f"({self.total_timecode}, {self.total_frames} frames) · {len(self.panels)} shots · {self.date}")


def sheet_from_edit(edit: edit_list.EditList, project: str, aspect: str, images: dict[str, str | None],
                    date: str | None = None) -> Sheet:
    """The sheet of a cut; ``images`` maps each shot to its picture file (None: no picture)."""
    panels = []
    for event in edit.events:
        image = images.get(event.shot)
        if image is not None and not os.path.isfile(image):
            image = None
        missing = ""
        if image is None:
            missing = event.source.reason or "no picture"
        panels.append(Panel(event.number, event.shot, image, event.size, event.size_label, event.lens,
                            event.duration, edit.rate.seconds(event.duration),
                            event.take_name or ("blocking" if event.source.kind == "playblast" else ""),
                            event.action, event.notes, missing))
    return Sheet(project, aspect, edit.width / edit.height, edit.rate.label(), edit.running_time,
                 edit.total_timecode, edit.total_frames, date or datetime.date.today().isoformat(), panels)


# --- text that fonts can draw ------------------------------------------------------------

_PLAIN = {"—": "-", "–": "-", "‒": "-", "−": "-", "“": '"', "”": '"', "„": '"', "‘": "'", "’": "'",
          "‚": "'", "…": "...", "×": "x", "•": "-", "→": "->", "←": "<-", "\u00a0": " "}


def plain_text(text: str, allowed: str = "latin-1") -> str:
    """``text`` in what a font without Unicode can draw: typographic punctuation made plain, accents
    dropped when the encoding lacks them, anything else as '?'."""
    out = []
    for char in text:
        char = _PLAIN.get(char, char)
        try:
            char.encode(allowed)
        except UnicodeEncodeError:
            decomposed = unicodedata.normalize("NFKD", char).encode(allowed, "ignore").decode(allowed)
            char = decomposed or "?"
        out.append(char)
    return "".join(out)


_UNICODE_FONTS = (
    ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    ("/usr/share/fonts/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf"),
    ("/Library/Fonts/Arial Unicode.ttf", "/Library/Fonts/Arial Unicode.ttf"),
    ("C:/Windows/Fonts/arial.ttf", "C:/Windows/Fonts/arialbd.ttf"),
)


def find_unicode_font() -> tuple[str, str] | None:
    """(regular, bold) TrueType files that draw any Latin, Greek or Cyrillic text, when the system has them."""
    for regular, bold in _UNICODE_FONTS:
        if os.path.isfile(regular):
            return regular, bold if os.path.isfile(bold) else regular
    return None


def _atomic(path: pathlib.Path, write) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()
    return path


def _thumbnail(image: str, width: int, height: int) -> np.ndarray | None:
    """The picture fitted into width×height (letterboxed in black), or None when it cannot be read."""
    pixels = cv2.imread(image, cv2.IMREAD_COLOR)
    if pixels is None:
        return None
    scale = min(width / pixels.shape[1], height / pixels.shape[0])
    w, h = max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale))
    fitted = cv2.resize(pixels, (w, h), interpolation=cv2.INTER_AREA)
    box = np.zeros((height, width, 3), np.uint8)
    y, x = (height - h) // 2, (width - w) // 2
    box[y:y + h, x:x + w] = fitted
    return box


def still_from_clip(clip: str | os.PathLike, index: int, path: str | os.PathLike) -> pathlib.Path | None:
    """Frame ``index`` of a movie (the last one when it is shorter) as a PNG at ``path``; None when
    the movie cannot be read. Frames are read in order: exact whatever the movie's key frames."""
    capture = cv2.VideoCapture(str(clip))
    picture = None
    try:
        for _ in range(max(0, index) + 1):
            ok, frame = capture.read()
            if not ok:
                break
            picture = frame
    finally:
        capture.release()
    if picture is None:
        return None
    return _atomic(pathlib.Path(path), lambda partial: cv2.imwrite(str(partial), picture))


# --- the PDF -----------------------------------------------------------------------------

_PAGE_W, _PAGE_H = 297.0, 210.0  # A4 landscape, mm
_MARGIN, _GUTTER, _HEADER = 10.0, 6.0, 17.0
_TEXT_H = 27.0  # name, facts, up to 3 lines of action, 1 of notes


def _columns(ratio: float) -> int:
    return 3 if ratio >= 1.3 else 4 if ratio >= 0.9 else 5


def write_pdf(sheet: Sheet, path: str | os.PathLike,
              unicode_font: tuple[str, str] | None | bool = True) -> pathlib.Path:
    """The sheet as an A4 landscape PDF. ``unicode_font``: True finds a system TrueType font
    (else the PDF's built-in Helvetica, Latin-1 only), a (regular, bold) pair uses those, False
    forces Helvetica."""
    try:
        from fpdf import FPDF
    except ImportError as error:
        raise BoardError("The storyboard PDF needs the fpdf2 package, which this Python does not have: install "
                         "StandIn from its extension zip (it bundles fpdf2), or pip install fpdf2 into this "
                         "Python. The PNG contact sheet does not need it.") from error
    font = find_unicode_font() if unicode_font is True else (unicode_font or None)

    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_title(f"{sheet.project} - storyboard")
    pdf.set_creator("StandIn")
    if font is not None:
        pdf.add_font("Sheet", "", font[0])
        pdf.add_font("Sheet", "B", font[1])
        family, text = "Sheet", (lambda s: s)
    else:
        family, text = "Helvetica", plain_text

    columns = _columns(sheet.ratio)
    panel_w = (_PAGE_W - 2 * _MARGIN - (columns - 1) * _GUTTER) / columns
    image_h = panel_w / sheet.ratio
    room = _PAGE_H - 2 * _MARGIN - _HEADER
    if image_h + _TEXT_H > room:  # tall pictures: shrink to fit one row
        image_h = room - _TEXT_H
    image_w = min(panel_w, image_h * sheet.ratio)
    rows = max(1, int((room + _GUTTER) // (image_h + _TEXT_H + _GUTTER)))
    per_page = rows * columns
    pages = max(1, -(-len(sheet.panels) // per_page))

    for page in range(pages):
        pdf.add_page()
        pdf.set_xy(_MARGIN, _MARGIN)
        pdf.set_font(family, "B", 15)
        pdf.cell(_PAGE_W - 2 * _MARGIN - 30, 7, text(sheet.project))
        pdf.set_font(family, "", 9)
        pdf.cell(30, 7, f"Page {page + 1} of {pages}", align="R")
        pdf.set_xy(_MARGIN, _MARGIN + 7)
        pdf.cell(_PAGE_W - 2 * _MARGIN, 5, text(sheet.summary))
        pdf.set_draw_color(160, 160, 160)
        pdf.line(_MARGIN, _MARGIN + 13.5, _PAGE_W - _MARGIN, _MARGIN + 13.5)
        for slot, panel in enumerate(sheet.panels[page * per_page:(page + 1) * per_page]):
            row, column = divmod(slot, columns)
            x = _MARGIN + column * (panel_w + _GUTTER)
            y = _MARGIN + _HEADER + row * (image_h + _TEXT_H + _GUTTER)
            _pdf_panel(pdf, panel, x, y, panel_w, image_w, image_h, family, text)
    return _atomic(pathlib.Path(path), lambda partial: pdf.output(str(partial)))


def _pdf_panel(pdf, panel: Panel, x: float, y: float, width: float, image_w: float, image_h: float,
               family: str, text) -> None:
    thumb = _thumbnail(panel.image, round(image_w * 12), round(image_h * 12)) if panel.image else None
    if thumb is not None:
        ok, jpeg = cv2.imencode(".jpg", thumb, [cv2.IMWRITE_JPEG_QUALITY, 88])
        pdf.image(io.BytesIO(jpeg.tobytes()), x=x, y=y, w=image_w, h=image_h)
    else:
        pdf.set_fill_color(48, 48, 52)
        pdf.rect(x, y, image_w, image_h, style="F")
        pdf.set_text_color(240, 100, 90)
        pdf.set_font(family, "B", 11)
        pdf.set_xy(x, y + image_h / 2 - 3)
        pdf.cell(image_w, 6, text(f"MISSING — {panel.shot}"), align="C")
        pdf.set_text_color(0, 0, 0)
    pdf.set_draw_color(90, 90, 90)
    pdf.rect(x, y, image_w, image_h)
    top = y + image_h + 1.2
    pdf.set_xy(x, top)
    pdf.set_font(family, "B", 9.5)
    pdf.cell(width * 0.7, 4.6, text(f"{panel.number}  {panel.shot}"))
    pdf.set_font(family, "", 8)
    pdf.cell(width * 0.3, 4.6, text(panel.take), align="R")
    pdf.set_xy(x, top + 4.8)
    pdf.cell(width, 4, text(panel.facts))
    pdf.set_xy(x, top + 9)
    if panel.action:
        pdf.set_font(family, "", 8)
        pdf.multi_cell(width, 3.6, text(_clip(panel.action, 3 * _chars_per_line(width, 8))), max_line_height=3.6)
    if panel.notes:
        pdf.set_xy(x, max(top + 9, pdf.get_y()) + 0.8)
        pdf.set_font(family, "", 7.5)
        pdf.set_text_color(90, 90, 90)
        pdf.cell(width, 3.6, text(_clip(f"Notes: {panel.notes}", _chars_per_line(width, 7.5))))
        pdf.set_text_color(0, 0, 0)


def _chars_per_line(width_mm: float, points: float) -> int:
    return max(8, int(width_mm / (points * 0.3528 * 0.5)))


def _clip(value: str, limit: int) -> str:
    value = " ".join(value.split())
    return value if len(value) <= limit else value[:limit - 1].rstrip() + "…"


# --- the PNG contact sheet ---------------------------------------------------------------


def _wrap(value: str, font, scale: float, width: int, lines: int) -> list[str]:
    words, out, line = " ".join(value.split()).split(" "), [], ""
    for word in words:
        trial = f"{line} {word}".strip()
        if cv2.getTextSize(trial, font, scale, 1)[0][0] <= width or not line:
            line = trial
        else:
            out.append(line)
            line = word
    if line:
        out.append(line)
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1].rstrip(".") + "..."
    return out


def write_contact_sheet(sheet: Sheet, path: str | os.PathLike, thumb_width: int = 480) -> pathlib.Path:
    """The sheet as one PNG: a header band, then the panels in rows."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    columns = _columns(sheet.ratio)
    thumb_h = max(8, round(thumb_width / sheet.ratio))
    gutter, margin, line = 16, 20, 20
    text_h = 6 * line
    header = 70
    rows = max(1, -(-len(sheet.panels) // columns))
    width = 2 * margin + columns * thumb_width + (columns - 1) * gutter
    height = header + margin + rows * (thumb_h + text_h + gutter)
    canvas = np.full((height, width, 3), 255, np.uint8)
    ascii_text = lambda s: plain_text(s, "ascii")  # noqa: E731 (Hershey fonts draw ASCII only)
    cv2.putText(canvas, ascii_text(sheet.project), (margin, 32), font, 0.9, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(canvas, ascii_text(sheet.summary.replace(" · ", "   ")), (margin, 58), font, 0.5, (60, 60, 60), 1,
                cv2.LINE_AA)
    for slot, panel in enumerate(sheet.panels):
        row, column = divmod(slot, columns)
        x = margin + column * (thumb_width + gutter)
        y = header + margin + row * (thumb_h + text_h + gutter)
        thumb = _thumbnail(panel.image, thumb_width, thumb_h) if panel.image else None
        if thumb is None:
            thumb = np.full((thumb_h, thumb_width, 3), (52, 48, 48), np.uint8)
            label = ascii_text(f"MISSING - {panel.shot}")
            size = cv2.getTextSize(label, font, 0.7, 2)[0]
            cv2.putText(thumb, label, ((thumb_width - size[0]) // 2, (thumb_h + size[1]) // 2), font, 0.7,
                        (90, 100, 240), 2, cv2.LINE_AA)
        canvas[y:y + thumb_h, x:x + thumb_width] = thumb
        cv2.rectangle(canvas, (x, y), (x + thumb_width - 1, y + thumb_h - 1), (90, 90, 90), 1)
        ty = y + thumb_h + line
        cv2.putText(canvas, ascii_text(f"{panel.number}  {panel.shot}"), (x, ty), font, 0.55, (0, 0, 0), 2, cv2.LINE_AA)
        if panel.take:
            size = cv2.getTextSize(panel.take, font, 0.45, 1)[0]
            cv2.putText(canvas, ascii_text(panel.take), (x + thumb_width - size[0], ty), font, 0.45, (60, 60, 60), 1,
                        cv2.LINE_AA)
        cv2.putText(canvas, ascii_text(panel.facts.replace(" · ", "   ")), (x, ty + line), font, 0.45, (40, 40, 40),
                    1, cv2.LINE_AA)
        action = _wrap(ascii_text(panel.action), font, 0.45, thumb_width, 3) if panel.action else []
        for index, text_line in enumerate(action):
            cv2.putText(canvas, text_line, (x, ty + (2 + index) * line), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        if panel.notes:
            note = _wrap(ascii_text(f"Notes: {panel.notes}"), font, 0.42, thumb_width, 1)[0]
            cv2.putText(canvas, note, (x, ty + (2 + len(action)) * line + 4), font, 0.42, (100, 100, 100), 1,
                        cv2.LINE_AA)

    def write(partial: pathlib.Path) -> None:
        if not cv2.imwrite(str(partial), canvas):
            raise BoardError(f"Could not write {path}: is the disk full?")

    return _atomic(pathlib.Path(path), write)
