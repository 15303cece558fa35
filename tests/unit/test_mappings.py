"""The mappings file: Distil's format accepted, every error names entry and field."""

import decimal

import pytest
import yaml

from meter_export.rating import mappings

DISTIL_SAMPLE = """
- meter: volume.size
  service: b1.standard
  type: Volume
  transformer: max
  unit: gigabyte
  metadata:
    name: {sources: [display_name]}
    availability zone: {sources: [availability_zone]}
- meter: cim.coe.cluster
  service: coe1.worker
  type: COE Worker
  unit: worker
  transformer: max
  volume: {source: metadata.node_count}
  filters:
    - to_number(metadata.node_count) >= `3`
    - to_number(metadata.node_count) < `4`
  metadata: {name: {sources: [name]}}
- meter: instance
  type: Virtual Machine
  unit: hour
  transformer: uptime
  transformer_config: {tracked_states: [active, paused], prefix: "c."}
  res_id_template: "%s-uptime"
  metadata:
    name: {sources: [display_name, name], template: "vm %s"}
- meter: ip.floating
  type: Floating IP
  unit: hour
  transformer: max
  volume: 1
"""


def parse(text):
    return mappings.parse(yaml.safe_load(text))


def error(text):
    with pytest.raises(mappings.MappingsError) as info:
        parse(text)
    return str(info.value)


def test_distil_sample_is_accepted():
    volume, coe, instance, ip = parse(DISTIL_SAMPLE)
    assert (volume.meter, volume.service, volume.unit, volume.in_sql) == ("volume.size", "b1.standard", "gigabyte", True)
    assert [f.name for f in volume.metadata] == ["availability zone", "name"]
    assert coe.in_sql is False and [text for text, _ in coe.volume] == ["metadata.node_count"] and len(coe.filters) == 2
    assert instance.service == "instance" and instance.config.prefix == "c." and instance.config.tracked_states == ("active", "paused")
    assert instance.metadata[0].template == "vm %s" and instance.res_id_template == "%s-uptime"
    assert ip.volume == decimal.Decimal(1) and ip.in_sql is True


def test_unknown_key_is_an_error_naming_entry_and_field():
    message = error("- {meter: cpu, unit: ns, type: VM, transformer: max, transform_info: true}")
    assert message.startswith("mappings[0] (meter cpu): ") and "transform_info" in message


@pytest.mark.parametrize(
    "entry, where",
    [
        ("{meter: cpu, unit: ns, type: VM, transformer: storagemax}", "transformer: must be one of"),
        ("{meter: cpu, type: VM, transformer: max}", "unit: required"),
        ("{meter: cpu, unit: ns, type: VM, transformer: max, metadata: {name: {sources: []}}}", "metadata.name.sources"),
        ("{meter: cpu, unit: ns, type: VM, transformer: max, metadata: {name: {sources: [a], template: x}}}", "metadata.name.template"),
        ("{meter: cpu, unit: ns, type: VM, transformer: max, filters: ['a ==']}", "filters.0: invalid JMESPath"),
        ("{meter: cpu, unit: ns, type: VM, transformer: max, volume: abc}", "volume"),
        ("{meter: cpu, unit: ns, type: VM, transformer: max, res_id_template: 'x'}", "res_id_template"),
        ("{meter: cpu, unit: ns, type: VM, transformer: uptime}", "transformer_config.tracked_states: required"),
        ("{meter: cpu, unit: ns, type: VM, transformer: max, transformer_config: {x: 1}}", "transformer_config.x: unknown"),
    ],
)
def test_bad_fields(entry, where):
    message = error("- {meter: ok, unit: u, type: T, transformer: sum}\n- " + entry)
    assert message.startswith("mappings[1] (meter cpu): ") and where in message, message


def test_not_a_list():
    assert "YAML list" in error("meter: cpu")
    assert "mappings[0]: " in error("- 3")


def test_same_service_twice_for_the_same_resources_is_refused():
    text = "- {meter: a, service: s, unit: u, type: T, transformer: max}\n- {meter: b, service: s, unit: u, type: T, transformer: sum}"
    message = error(text)
    assert "mappings[1] (meter b): service: s" in message
