"""Joining MP4 pieces by a stream copy: real H.264/AAC files (encoded here with PyAV's FFmpeg), read
back by FFmpeg's decoder frame by frame."""

import fractions

import movies
import pytest

from standin.addon import mp4_join

av = pytest.importorskip("av")

RATE = fractions.Fraction(24000, 1001)


def _encode(path, colours, size=(64, 48), b_frames=0, sound_seconds=0.0):
    """An MP4 whose frame i is filled with colours[i] (RGB); with AAC sound when asked."""
    with av.open(str(path), "w") as out:
        stream = movies.encode_colours(out, colours, size, RATE, b_frames)
        movies.flush(out, stream)
        if sound_seconds:
            movies.encode_tone(out, sound_seconds)
    return path


def _sound_only(path, seconds):
    with av.open(str(path), "w") as out:
        movies.encode_tone(out, seconds)
    return path


def _decoded_colours(path):
    with av.open(str(path)) as movie:
        return [tuple(int(v) for v in frame.to_ndarray(format="rgb24")[24, 32]) for frame in movie.decode(video=0)]


def _close(a, b, tolerance=12):
    return all(abs(x - y) <= tolerance for x, y in zip(a, b))


PALETTE = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (220, 220, 30)]


@pytest.mark.parametrize("b_frames", [0, 2], ids=["no-b-frames", "b-frames"])
def test_pieces_play_one_after_another(tmp_path, b_frames):
    lengths = [7, 12, 5]
    pieces = []
    expected = []
    for index, length in enumerate(lengths):
        colours = [PALETTE[(index + k) % 4] for k in range(length)]
        pieces.append(_encode(tmp_path / f"piece{index}.mp4", colours, b_frames=b_frames))
        expected += colours
    joined = mp4_join.join(pieces, tmp_path / "joined.mp4")
    got = _decoded_colours(joined)
    assert len(got) == sum(lengths)
    assert all(_close(g, e) for g, e in zip(got, expected)), (got, expected)
    with av.open(str(joined)) as movie:
        video = movie.streams.video[0]
        assert video.frames == sum(lengths) and video.average_rate == RATE
        assert float(movie.duration / 1e6) == pytest.approx(sum(lengths) / float(RATE), abs=0.05)
    assert not list(tmp_path.glob(".*partial*"))


def test_sound_is_laid_beside_the_pictures(tmp_path):
    pieces = [_encode(tmp_path / "a.mp4", [PALETTE[0]] * 24), _encode(tmp_path / "b.mp4", [PALETTE[1]] * 24)]
    sound = _sound_only(tmp_path / "sound.mp4", 2.0)
    joined = mp4_join.join(pieces, tmp_path / "joined.mp4", sound=sound)
    with av.open(str(joined)) as movie:
        assert [s.type for s in movie.streams] == ["video", "audio"]
        assert movie.streams.audio[0].codec_context.name == "aac"
        samples = sum(frame.samples for frame in movie.decode(audio=0))
    assert samples == pytest.approx(96000, abs=2048)
    assert len(_decoded_colours(joined)) == 48


def test_pieces_that_cannot_follow_one_another_are_refused(tmp_path):
    small = _encode(tmp_path / "small.mp4", [PALETTE[0]] * 4, size=(64, 48))
    large = _encode(tmp_path / "large.mp4", [PALETTE[1]] * 4, size=(96, 48))
    with pytest.raises(mp4_join.JoinError, match="other settings"):
        mp4_join.join([small, large], tmp_path / "joined.mp4")
    assert not (tmp_path / "joined.mp4").exists()

    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(small.read_bytes()[:-40])
    with pytest.raises(mp4_join.JoinError, match="runs past the end|not a finished MP4"):
        mp4_join.join([small, truncated], tmp_path / "joined.mp4")
    (tmp_path / "text.mp4").write_bytes(b"this is not a movie at all")
    with pytest.raises(mp4_join.JoinError):
        mp4_join.join([tmp_path / "text.mp4"], tmp_path / "joined.mp4")
    with pytest.raises(mp4_join.JoinError, match="sound tracks"):
        mp4_join.join([small], tmp_path / "joined.mp4", sound=small)
    assert not (tmp_path / "joined.mp4").exists()
