import pytest

from meter_export import filters
from meter_export.sources import MeterSpec


def test_a_full_filter_parses():
    result = filters.parse(
        {
            "filters": [
                {
                    "name": "compute",
                    "query": {"project_id": "p1", "resource_type": "instance", "raw": {"=": {"flavor_id": "m1"}}},
                    "meters": ["cpu", {"name": "memory", "counter_type": "gauge", "granularity": 300, "aggregation": "max"}],
                }
            ]
        }
    )
    [f] = result
    assert f.name == "compute" and f.project_id == "p1" and f.resource_type == "instance"
    assert f.raw_query == {"=": {"flavor_id": "m1"}}
    assert f.meters == (MeterSpec("cpu"), MeterSpec("memory", "gauge", 300, "max"))


@pytest.mark.parametrize(
    "document,message",
    [
        (None, "top-level 'filters:'"),
        ({"filters": []}, "top-level 'filters:'"),
        ({"filters": [{"name": "a"}]}, "filter 'a': meters: required key not provided"),
        ({"filters": [{"name": "a", "meters": []}]}, "filter 'a': meters"),
        ({"filters": [{"meters": ["cpu"]}]}, "filters[0]: name"),
        ({"filters": [{"name": "a", "meters": [{"name": "cpu", "granularity": 0}]}]}, "filter 'a': meters.0"),
        ({"filters": [{"name": "a", "meters": [{"name": "cpu", "counter_type": "rate"}]}]}, "filter 'a'"),
        ({"filters": [{"name": "a", "meters": ["cpu"], "query": {"tenant": "x"}}]}, "filter 'a': query.tenant"),
        ({"filters": [{"name": "a", "meters": ["cpu", "cpu"]}]}, "listed twice"),
        ({"filters": [{"name": "a", "meters": ["cpu"]}, {"name": "a", "meters": ["x"]}]}, "unique: a"),
    ],
)
def test_invalid_filters_name_the_filter_and_field(document, message):
    with pytest.raises(filters.FiltersError) as e:
        filters.parse(document)
    assert message in str(e.value)


def test_load_reports_missing_and_invalid_files(tmp_path):
    with pytest.raises(filters.FiltersError, match="cannot read"):
        filters.load(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("filters: [\n")
    with pytest.raises(filters.FiltersError, match="not valid YAML"):
        filters.load(str(bad))


def test_a_ceilometer_raw_item_is_checked_at_start_up():
    document = {"filters": [{"name": "c", "meters": ["cpu"], "query": {"raw": [{"field": "timestamp", "op": "lt", "value": "x"}]}}]}
    with pytest.raises(filters.FiltersError, match=r"filter 'c': query.raw: \[0\]: field timestamp: the windows set it"):
        filters.parse(document)
