"""MT-01: placement picks the region with the lowest latency for the initial participants."""

from __future__ import annotations

import pytest

from protocol.regions import MEETING_REGIONS
from services.common.errors import Invalid
from services.meeting.api.app import load_latency_matrix
from services.meeting.domain.placement import place, validate_matrix

MATRIX = {
    "a": {"na": 10, "sa": 50, "eu": 90, "asia": 200},
    "b": {"na": 60, "sa": 20, "eu": 90, "asia": 200},
    "c": {"na": 35, "sa": 35, "eu": 90, "asia": 200},
}


def test_single_participant_goes_to_the_nearest_region() -> None:
    assert place(["a"], MATRIX, MEETING_REGIONS).region == "na"
    assert place(["b"], MATRIX, MEETING_REGIONS).region == "sa"


def test_mean_latency_decides_and_reports_every_candidate() -> None:
    result = place(["a", "b", "b"], MATRIX, MEETING_REGIONS)
    assert result.region == "sa"
    assert result.candidates["na"] == pytest.approx((10 + 60 + 60) / 3, abs=0.01)
    assert result.max_latency_ms == 50


def test_ties_go_to_the_lower_worst_case_then_region_order() -> None:
    assert place(["c"], MATRIX, MEETING_REGIONS).region == "na"
    assert place(["c"], MATRIX, ["sa", "na"]).region == "sa"


def test_unknown_location_names_its_index() -> None:
    with pytest.raises(Invalid) as caught:
        place(["a", "atlantis"], MATRIX, MEETING_REGIONS)
    assert caught.value.field == "participant_locations.1"
    with pytest.raises(Invalid):
        place([], MATRIX, MEETING_REGIONS)


@pytest.mark.parametrize(
    ("locations", "region"),
    [
        (["brazil", "argentina"], "sa"),
        (["germany", "uk", "us-east"], "eu"),
        (["japan", "singapore"], "asia"),
        (["us-west", "canada"], "na"),
    ],
)
def test_configured_matrix(locations: list[str], region: str) -> None:
    matrix = load_latency_matrix()
    validate_matrix(matrix, MEETING_REGIONS)
    assert place(locations, matrix, MEETING_REGIONS).region == region


def test_a_matrix_missing_a_region_is_rejected() -> None:
    with pytest.raises(ValueError, match="no latency to asia"):
        validate_matrix({"x": {"na": 1, "sa": 1, "eu": 1}}, MEETING_REGIONS)
