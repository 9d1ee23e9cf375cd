# SPDX-License-Identifier: GPL-3.0-or-later
"""Join MP4 files end to end without re-encoding (a stream copy). Pure Python (no bpy).

The animatic is encoded shot by shot, each shot's stretch of the cut into its own small MP4 kept in
the cache; a rebuild after one shot changed encodes only that shot again and joins the pieces here.
Blender's FFmpeg writes every piece with the same settings, so their H.264 streams share one
decoder configuration (``avcC``) and can follow one another; each piece starts on a key frame. The
sound is encoded once over the whole cut (an audio-only MP4) and laid beside the joined picture.

Only what the join needs is read: the sample tables of ``moov`` (``stts``, ``stss``, ``ctts``,
``stsc``, ``stsz``, ``stco``/``co64``) and the durations; everything else is copied. Pieces that
cannot follow one another (different decoder configuration, time scale, or more than one picture
track) raise ``JoinError`` and the caller encodes the cut in one go instead.
"""

from __future__ import annotations

import os
import pathlib
import struct
from dataclasses import dataclass, field

_CONTAINERS = {b"moov", b"trak", b"edts", b"mdia", b"minf", b"stbl", b"dinf"}


class JoinError(Exception):
    """The files cannot be joined by a stream copy; the message says why."""


@dataclass
class Box:
    kind: bytes
    payload: bytes = b""
    children: list["Box"] | None = None

    def find(self, kind: bytes) -> "Box | None":
        return next((child for child in self.children or () if child.kind == kind), None)

    def need(self, kind: bytes, where: str) -> "Box":
        found = self.find(kind)
        if found is None:
            raise JoinError(f"{where}: no '{kind.decode()}' box")
        return found

    def to_bytes(self) -> bytes:
        body = b"".join(child.to_bytes() for child in self.children) if self.children is not None else self.payload
        size = len(body) + 8
        if size > 0xFFFFFFFF:
            return struct.pack(">I4sQ", 1, self.kind, size + 8) + body
        return struct.pack(">I4s", size, self.kind) + body


def _boxes(data: bytes, start: int, end: int, where: str) -> list[tuple[bytes, int, int]]:
    """(kind, payload start, payload end) of the boxes in ``data[start:end]``."""
    found = []
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            if offset + 16 > end:
                raise JoinError(f"{where}: truncated box header")
            size = struct.unpack_from(">Q", data, offset + 8)[0]
            header = 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            raise JoinError(f"{where}: a '{kind.decode('latin-1')}' box runs past the end of the file "
                            f"(an unfinished write?)")
        found.append((kind, offset + header, offset + size))
        offset += size
    if offset != end:
        raise JoinError(f"{where}: {end - offset} stray bytes after the last box")
    return found


def _tree(data: bytes, start: int, end: int, where: str) -> list[Box]:
    boxes = []
    for kind, body_start, body_end in _boxes(data, start, end, where):
        if kind in _CONTAINERS:
            boxes.append(Box(kind, children=_tree(data, body_start, body_end, where)))
        else:
            boxes.append(Box(kind, payload=data[body_start:body_end]))
    return boxes


# --- the sample tables -------------------------------------------------------------------


def _full(payload: bytes) -> tuple[int, bytes]:
    """(version, body) of a full box."""
    return payload[0], payload[4:]


def _table(payload: bytes, entry: str) -> list[tuple]:
    _version, body = _full(payload)
    count = struct.unpack_from(">I", body)[0]
    size = struct.calcsize(">" + entry)
    return [struct.unpack_from(">" + entry, body, 4 + i * size) for i in range(count)]


def _pack_table(entry: str, rows: list[tuple], version: int = 0) -> bytes:
    return struct.pack(">B3xI", version, len(rows)) + b"".join(struct.pack(">" + entry, *row) for row in rows)


@dataclass
class Track:
    """One track of a parsed file: its boxes, and where its samples lie in the file."""

    trak: Box
    handler: bytes
    timescale: int
    offsets: list[int]
    sizes: list[int]
    deltas: list[tuple[int, int]]          # stts runs: (count, delta)
    sync: list[int] | None                 # 1-based key-frame numbers; None: every sample is one
    composition: list[tuple[int, int]] | None  # ctts runs
    composition_version: int = 0
    edit_media_time: int | None = None     # the first edit's media time, when there is an edit list
    edit_duration: int | None = None       # and how long it plays, in the file's movie time scale

    @property
    def stbl(self) -> Box:
        return self.trak.need(b"mdia", "trak").need(b"minf", "mdia").need(b"stbl", "minf")

    @property
    def sample_count(self) -> int:
        return len(self.sizes)

    @property
    def media_duration(self) -> int:
        return sum(count * delta for count, delta in self.deltas)

    @property
    def description(self) -> bytes:
        """The picture's sample description without its bit-rate note (``btrt`` differs per piece)."""
        return _without_bitrate(self.stbl.need(b"stsd", "stbl").payload)


_VISUAL_ENTRY_HEADER = 78  # bytes of a visual sample entry before its child boxes


def _without_bitrate(stsd: bytes) -> bytes:
    """``stsd`` with the ``btrt`` box of each visual sample entry left out."""
    head, entries = stsd[:8], []
    for kind, start, end in _boxes(stsd, 8, len(stsd), "stsd"):
        body = stsd[start:end]
        if len(body) > _VISUAL_ENTRY_HEADER:
            try:
                children = _boxes(body, _VISUAL_ENTRY_HEADER, len(body), "sample entry")
            except JoinError:
                children = None
            if children is not None:
                kept = b"".join(struct.pack(">I4s", e - s + 8, k) + body[s:e] for k, s, e in children if k != b"btrt")
                body = body[:_VISUAL_ENTRY_HEADER] + kept
        entries.append(struct.pack(">I4s", len(body) + 8, kind) + body)
    return head + b"".join(entries)


def _read_track(trak: Box, where: str) -> Track:
    mdia = trak.need(b"mdia", where)
    version, body = _full(mdia.need(b"mdhd", where).payload)
    timescale = struct.unpack_from(">I", body, 16 if version == 1 else 8)[0]
    handler = _full(mdia.need(b"hdlr", where).payload)[1][4:8]
    stbl = mdia.need(b"minf", where).need(b"stbl", where)

    stsz_version, stsz = _full(stbl.need(b"stsz", where).payload)
    uniform, count = struct.unpack_from(">II", stsz)
    sizes = [uniform] * count if uniform else list(struct.unpack_from(f">{count}I", stsz, 8))
    if stbl.find(b"stco") is not None:
        chunks = [row[0] for row in _table(stbl.find(b"stco").payload, "I")]
    elif stbl.find(b"co64") is not None:
        chunks = [row[0] for row in _table(stbl.find(b"co64").payload, "Q")]
    else:
        raise JoinError(f"{where}: no chunk offsets")
    runs = _table(stbl.need(b"stsc", where).payload, "III")
    offsets = []
    sample = 0
    for index, (first, per_chunk, _description) in enumerate(runs):
        last = runs[index + 1][0] - 1 if index + 1 < len(runs) else len(chunks)
        for chunk in range(first, last + 1):
            offset = chunks[chunk - 1]
            for _ in range(per_chunk):
                if sample >= count:
                    break
                offsets.append(offset)
                offset += sizes[sample]
                sample += 1
    if sample != count:
        raise JoinError(f"{where}: the sample-to-chunk table covers {sample} of {count} samples")

    deltas = [tuple(row) for row in _table(stbl.need(b"stts", where).payload, "II")]
    stss = stbl.find(b"stss")
    sync = [row[0] for row in _table(stss.payload, "I")] if stss is not None else None
    ctts = stbl.find(b"ctts")
    composition, composition_version = None, 0
    if ctts is not None:
        composition_version = ctts.payload[0]
        composition = [tuple(row) for row in _table(ctts.payload, "Ii" if composition_version else "II")]
    media_time = edit_duration = None
    edts = trak.find(b"edts")
    if edts is not None and edts.find(b"elst") is not None:
        elst_version, elst = _full(edts.find(b"elst").payload)
        if struct.unpack_from(">I", elst)[0]:
            if elst_version:
                edit_duration, media_time = struct.unpack_from(">Qq", elst, 4)
            else:
                edit_duration, media_time = struct.unpack_from(">Ii", elst, 4)
    return Track(trak, handler, timescale, offsets, sizes, deltas, sync, composition, composition_version,
                 media_time, edit_duration)


@dataclass
class Movie:
    path: pathlib.Path
    data: bytes
    ftyp: Box
    moov: Box
    tracks: list[Track] = field(default_factory=list)

    @property
    def movie_timescale(self) -> int:
        version, body = _full(self.moov.need(b"mvhd", str(self.path)).payload)
        return struct.unpack_from(">I", body, 16 if version == 1 else 8)[0]

    def track(self, handler: bytes) -> Track:
        found = [t for t in self.tracks if t.handler == handler]
        if len(found) != 1:
            kind = {b"vide": "picture", b"soun": "sound"}.get(handler, handler.decode("latin-1"))
            raise JoinError(f"{self.path.name} has {len(found)} {kind} tracks, not one")
        return found[0]

    def samples(self, track: Track) -> bytes:
        return b"".join(self.data[o:o + s] for o, s in zip(track.offsets, track.sizes))


def read_movie(path: str | os.PathLike) -> Movie:
    path = pathlib.Path(path)
    data = path.read_bytes()
    top = _tree(data, 0, len(data), path.name)
    ftyp = next((b for b in top if b.kind == b"ftyp"), None)
    moov = next((b for b in top if b.kind == b"moov"), None)
    if ftyp is None or moov is None:
        raise JoinError(f"{path.name} is not a finished MP4 (no '{'ftyp' if ftyp is None else 'moov'}' box)")
    movie = Movie(path, data, ftyp, moov)
    movie.tracks = [_read_track(trak, path.name) for trak in moov.children if trak.kind == b"trak"]
    for track in movie.tracks:
        if track.offsets and max(o + s for o, s in zip(track.offsets, track.sizes)) > len(data):
            raise JoinError(f"{path.name}: samples run past the end of the file")
    return movie


# --- writing -----------------------------------------------------------------------------


def _set_duration(payload: bytes, duration: int, offset_v0: int, offset_v1: int) -> bytes:
    version = payload[0]
    if version == 1:
        return payload[:offset_v1] + struct.pack(">Q", duration) + payload[offset_v1 + 8:]
    if duration > 0xFFFFFFFF:
        raise JoinError("the joined movie is too long for a version-0 header")
    return payload[:offset_v0] + struct.pack(">I", duration) + payload[offset_v0 + 4:]


def _set_track_id(tkhd: bytes, track_id: int) -> bytes:
    at = 20 if tkhd[0] == 1 else 12
    return tkhd[:at] + struct.pack(">I", track_id) + tkhd[at + 4:]


def _with_children(box: Box, replace: dict[bytes, Box | None]) -> Box:
    """A copy of ``box`` with the named children replaced (None drops one); new ones are appended."""
    children = []
    done = set()
    for child in box.children:
        if child.kind in replace:
            done.add(child.kind)
            if replace[child.kind] is not None:
                children.append(replace[child.kind])
        else:
            children.append(child)
    children += [b for k, b in replace.items() if k not in done and b is not None]
    return Box(box.kind, children=children)


def _merge_runs(runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for count, value in runs:
        if merged and merged[-1][1] == value:
            merged[-1][0] += count
        else:
            merged.append([count, value])
    return [tuple(run) for run in merged]


def _rebuilt_trak(template: Track, track_id: int, sizes: list[int], deltas, sync, composition,
                  composition_version: int, chunk_offset: int, movie_duration: int, use_co64: bool) -> Box:
    """``template``'s trak with new sample tables (all samples in one chunk at ``chunk_offset``),
    playing for ``movie_duration`` (movie time scale) from its first edit's media time."""
    media_duration = sum(count * delta for count, delta in deltas)
    stbl_parts: dict[bytes, Box | None] = {
        b"stts": Box(b"stts", _pack_table("II", deltas)),
        b"stsc": Box(b"stsc", _pack_table("III", [(1, len(sizes), 1)] if sizes else [])),
        b"stsz": Box(b"stsz", struct.pack(">B3xII", 0, 0, len(sizes)) + struct.pack(f">{len(sizes)}I", *sizes)),
        b"stco": None if use_co64 else Box(b"stco", _pack_table("I", [(chunk_offset,)])),
        b"co64": Box(b"co64", _pack_table("Q", [(chunk_offset,)])) if use_co64 else None,
        b"stss": Box(b"stss", _pack_table("I", [(n,) for n in sync])) if sync is not None else None,
        b"ctts": Box(b"ctts", _pack_table("Ii" if composition_version else "II", composition,
                                          composition_version)) if composition is not None else None,
    }
    if template.handler == b"vide":
        stbl_parts[b"stsd"] = Box(b"stsd", template.description)
    stbl = _with_children(template.stbl, stbl_parts)
    mdia_box = template.trak.need(b"mdia", "trak")
    minf = _with_children(mdia_box.need(b"minf", "mdia"), {b"stbl": stbl})
    mdhd = mdia_box.need(b"mdhd", "mdia")
    mdia = _with_children(mdia_box, {
        b"minf": minf, b"mdhd": Box(b"mdhd", _set_duration(mdhd.payload, media_duration, 16, 24))})
    tkhd = template.trak.need(b"tkhd", "trak").payload
    tkhd = _set_duration(_set_track_id(tkhd, track_id), movie_duration, 20, 28)
    replace: dict[bytes, Box | None] = {b"tkhd": Box(b"tkhd", tkhd), b"mdia": mdia}
    if template.edit_media_time is not None:
        elst = struct.pack(">B3xIQqhh", 1, 1, movie_duration, template.edit_media_time, 1, 0)
        replace[b"edts"] = Box(b"edts", children=[Box(b"elst", elst)])
    return _with_children(template.trak, replace)


def _joined_picture(pieces: list[Movie]) -> tuple[Track, list[int], list, list | None, list | None, int]:
    first = pieces[0].track(b"vide")
    sizes, deltas, sync, composition = [], [], [], []
    has_composition = first.composition is not None
    for movie in pieces:
        track = movie.track(b"vide")
        where = movie.path.name
        if track.description != first.description:
            raise JoinError(f"{where} was encoded with other settings than {pieces[0].path.name} "
                            f"(picture size or H.264 configuration differ)")
        if track.timescale != first.timescale:
            raise JoinError(f"{where} has another time scale ({track.timescale}, not {first.timescale})")
        if ((track.composition is not None) != has_composition or track.edit_media_time != first.edit_media_time
                or track.composition_version != first.composition_version):
            raise JoinError(f"{where} reorders frames differently from {pieces[0].path.name}")
        if track.sync is not None and (not track.sync or track.sync[0] != 1):
            raise JoinError(f"{where} does not start on a key frame")
        base = len(sizes)
        sizes += track.sizes
        deltas += track.deltas
        sync += [base + n for n in (track.sync if track.sync is not None else range(1, track.sample_count + 1))]
        if has_composition:
            composition += track.composition
    every_sample_sync = len(sync) == len(sizes)
    return (first, sizes, _merge_runs(deltas), None if every_sample_sync else sync,
            _merge_runs(composition) if has_composition else None, first.composition_version)


def join(pieces: list[str | os.PathLike], target: str | os.PathLike,
         sound: str | os.PathLike | None = None) -> pathlib.Path:
    """Write the pictures of ``pieces`` one after another, and the sound track of ``sound`` (an MP4
    with one sound track) beside them, into ``target``: written under a temporary name in the same
    folder and renamed when complete, so ``target`` is never a half-written file."""
    if not pieces:
        raise JoinError("nothing to join")
    target = pathlib.Path(target)
    movies = [read_movie(path) for path in pieces]
    template, sizes, deltas, sync, composition, composition_version = _joined_picture(movies)
    sound_movie = read_movie(sound) if sound is not None else None
    sound_track = sound_movie.track(b"soun") if sound_movie is not None else None
    movie_timescale = movies[0].movie_timescale

    picture_bytes = sum(sizes)
    sound_bytes = sum(sound_track.sizes) if sound_track is not None else 0
    use_co64 = picture_bytes + sound_bytes > 0xFFFFFFFF - (1 << 20)

    # the picture plays all its frames (B-frame reordering only shifts them: the edit's media time);
    # the sound keeps its own edit, which skips the encoder's priming samples
    picture_duration = round(sum(c * d for c, d in deltas) * movie_timescale / template.timescale)
    if sound_track is not None:
        if sound_track.edit_duration is not None:
            sound_duration = round(sound_track.edit_duration * movie_timescale / sound_movie.movie_timescale)
        else:
            sound_duration = round(sound_track.media_duration * movie_timescale / sound_track.timescale)

    def moov_for(mdat_payload_start: int) -> Box:
        traks = [_rebuilt_trak(template, 1, sizes, deltas, sync, composition, composition_version,
                               mdat_payload_start, picture_duration, use_co64)]
        durations = [picture_duration]
        if sound_track is not None:
            traks.append(_rebuilt_trak(sound_track, 2, sound_track.sizes, list(sound_track.deltas), sound_track.sync,
                                       sound_track.composition, sound_track.composition_version,
                                       mdat_payload_start + picture_bytes, sound_duration, use_co64))
            durations.append(sound_duration)
        mvhd = movies[0].moov.need(b"mvhd", "moov").payload
        mvhd = _set_duration(mvhd, max(durations), 16, 24)
        mvhd = mvhd[:-4] + struct.pack(">I", len(traks) + 1)  # next track id
        kept = [b for b in movies[0].moov.children if b.kind not in (b"mvhd", b"trak")]
        return Box(b"moov", children=[Box(b"mvhd", mvhd)] + traks + kept)

    ftyp = movies[0].ftyp.to_bytes()
    mdat_size = picture_bytes + sound_bytes
    mdat_header = 16 if mdat_size + 8 > 0xFFFFFFFF else 8
    moov_size = len(moov_for(0).to_bytes())  # the same size whatever the offsets
    payload_start = len(ftyp) + moov_size + mdat_header
    moov = moov_for(payload_start).to_bytes()
    if len(moov) != moov_size:
        raise JoinError("internal: the movie header changed size")

    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        with open(partial, "wb") as out:
            out.write(ftyp)
            out.write(moov)
            if mdat_header == 16:
                out.write(struct.pack(">I4sQ", 1, b"mdat", mdat_size + 16))
            else:
                out.write(struct.pack(">I4s", mdat_size + 8, b"mdat"))
            for movie in movies:
                out.write(movie.samples(movie.track(b"vide")))
            if sound_track is not None:
                out.write(sound_movie.samples(sound_track))
        os.replace(partial, target)
    finally:
        if partial.exists():
            partial.unlink()
    return target
