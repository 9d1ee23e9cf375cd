import pytest

from standin.addon import formats


@pytest.mark.parametrize(
    "aspect, long_edge, expected",
    [("2.39", 1920, (1920, 800)), ("1.85", 1920, (1920, 1040)), ("16:9", 1920, (1920, 1080)),
     ("9:16", 1920, (1080, 1920)), ("4:5", 1350, (1080, 1352)), ("1:1", 1024, (1024, 1024))],
)
def test_frame_size_keeps_the_aspect_in_steps_of_eight(aspect, long_edge, expected):
    width, height = formats.frame_size(aspect, long_edge)
    assert (width, height) == expected
    assert width % 8 == 0 and height % 8 == 0
    assert abs(width / height - formats.ASPECT_BY_KEY[aspect].ratio) < 0.02


def test_frame_size_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="unknown aspect"):
        formats.frame_size("3:1", 1920)
    with pytest.raises(ValueError, match="outside"):
        formats.frame_size("16:9", 10000)


def test_drop_frame_free_rates_and_timecode():
    ntsc_film = formats.FRAME_RATE_BY_KEY["23.976"]
    assert abs(ntsc_film.rate - 23.976) < 1e-3
    assert abs(formats.FRAME_RATE_BY_KEY["29.97"].rate - 29.97) < 1e-3
    assert formats.timecode(24 * 3661 + 5, formats.FRAME_RATE_BY_KEY["24"]) == "01:01:01:05"
