import pytest

from standin.addon import shot_names


def test_parse_and_format_round_trip():
    parsed = shot_names.parse("SQ010_SH0020")
    assert parsed == shot_names.ShotName(10, 20)
    assert str(parsed) == "SQ010_SH0020"
    assert shot_names.parse("SQ10_SH20") is None
    assert shot_names.parse("shot 1") is None


def test_new_shots_step_by_ten():
    assert shot_names.next_name([]) == "SQ010_SH0010"
    assert shot_names.next_name(["SQ010_SH0010", "SQ010_SH0020"]) == "SQ010_SH0030"
    # An inserted SH0015 does not break the steps of 10.
    assert shot_names.next_name(["SQ010_SH0010", "SQ010_SH0015"]) == "SQ010_SH0020"
    assert shot_names.next_name(["SQ020_SH0090", "odd name"], sequence=20) == "SQ020_SH0100"


def test_between_two_shots_picks_the_midpoint_then_any_free_number():
    existing = ["SQ010_SH0010", "SQ010_SH0020"]
    assert shot_names.between("SQ010_SH0010", "SQ010_SH0020", existing) == "SQ010_SH0015"
    existing.append("SQ010_SH0015")
    name = shot_names.between("SQ010_SH0010", "SQ010_SH0015", existing)
    assert "SQ010_SH0010" < name < "SQ010_SH0015"
    assert shot_names.between(None, "SQ010_SH0010", existing) == "SQ010_SH0005"
    assert shot_names.between("SQ010_SH0020", None, existing) == "SQ010_SH0030"


def test_no_room_between_is_a_clear_error():
    with pytest.raises(ValueError, match="no shot number left"):
        shot_names.between("SQ010_SH0010", "SQ010_SH0011", ["SQ010_SH0010", "SQ010_SH0011"])
