import copy

import pytest

from pharmaflow.contracts.compat import Mode, compatibility_problems
from pharmaflow.contracts.registry import ContractRegistry, default_registry
from pharmaflow.errors import IncompatibleSchemaError

# docs/contracts.md: the fields outside tools rely on, per event type.
REQUIRED_PAYLOAD_FIELDS = {
    "pharmacy.order.placed": {
        "order_id",
        "pharmacy_id",
        "payer_id",
        "ndc",
        "quantity",
        "days_supply",
        "priority",
        "patient",
    },
    "pharmacy.order.insurance_validated": {"order_id", "status", "copay_amount", "reject_code"},
    "pharmacy.order.filled": {"order_id", "ndc", "lot_number", "quantity", "pharmacist_id"},
    "pharmacy.order.shipped": {"order_id", "shipment_id", "carrier_id"},
    "pharmacy.order.delivered": {"order_id"},
    "pharmacy.order.cancelled": {"order_id", "reason"},
    "manufacturing.batch.status": {
        "batch_id",
        "lot_number",
        "ndc",
        "site_id",
        "equipment_id",
        "operator_id",
        "status",
        "batch_size_kg",
        "actual_yield_kg",
    },
    "manufacturing.sensor.reading": {
        "sensor_id",
        "batch_id",
        "equipment_id",
        "sensor_type",
        "value",
        "unit",
        "spec_min",
        "spec_max",
    },
    "manufacturing.lab.result": {
        "test_id",
        "batch_id",
        "test_name",
        "result",
        "unit",
        "spec_min",
        "spec_max",
        "outcome",
        "analyst_id",
    },
    "manufacturing.deviation.opened": {
        "deviation_id",
        "batch_id",
        "severity",
        "category",
        "description",
    },
    "manufacturing.deviation.closed": {"deviation_id", "batch_id", "capa_id", "resolution"},
    "logistics.shipment.created": {
        "shipment_id",
        "origin_facility_id",
        "destination_facility_id",
        "order_id",
        "carrier_id",
        "service_level",
        "promised_delivery_time",
        "cold_chain",
        "lot_numbers",
    },
    "logistics.shipment.scanned": {"shipment_id", "status", "facility_id"},
    "logistics.shipment.delivered": {"shipment_id"},
    "logistics.shipment.exception": {"shipment_id", "exception_code", "detail"},
    "logistics.temperature.reading": {
        "shipment_id",
        "logger_id",
        "celsius",
        "spec_min",
        "spec_max",
    },
    "feedback.survey.submitted": {"survey_id", "order_id", "rating", "nps", "comment"},
    "sales.sale.completed": {
        "sale_id",
        "pharmacy_id",
        "ndc",
        "quantity",
        "unit_price",
        "promotion_code",
    },
}
ENVELOPE = {
    "event_id",
    "event_type",
    "event_version",
    "event_time",
    "source_system",
    "trace_id",
    "key",
}


def test_every_contract_event_type_is_registered_with_its_fields():
    registry = default_registry()
    assert set(registry.event_types()) == set(REQUIRED_PAYLOAD_FIELDS)
    for event_type, fields in REQUIRED_PAYLOAD_FIELDS.items():
        contract = registry.get(event_type)
        assert contract is not None and contract.version == 1
        assert {f.name for f in contract.envelope} == ENVELOPE
        assert {f.name for f in contract.payload.children} >= fields


def test_patient_fields_are_marked_phi():
    contract = default_registry().get("pharmacy.order.placed")
    phi = {f.path: f.phi for f in contract.phi_fields}
    for name in ("patient_id", "first_name", "last_name", "date_of_birth", "phone", "email"):
        assert phi[f"payload.patient.{name}"]
    assert phi["payload.patient.address.street"] == "remove"
    assert phi["payload.patient.address.zip"] == "zip"


def _schema(event_type="sales.sale.completed"):
    return copy.deepcopy(default_registry().get(event_type).schema)


def _payload_fields(schema):
    return next(f for f in schema["fields"] if f["name"] == "payload")["type"]["fields"]


def _v2(schema):
    schema["pharmaflow.version"] = 2
    return schema


def test_adding_an_optional_field_is_accepted_as_v2():
    registry = ContractRegistry().load_dir()
    new = _v2(_schema())
    _payload_fields(new).append(
        {"name": "store_channel", "type": ["null", "string"], "default": None}
    )
    contract = registry.register(new)
    assert registry.versions("sales.sale.completed") == [1, 2]
    assert "store_channel" in {f.name for f in contract.payload.children}


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda f: f.append({"name": "till_id", "type": "string"}), "without a default"),
        (lambda f: f.__setitem__(3, {"name": "quantity", "type": "string"}), "cannot be read"),
        (lambda f: f.pop(0), "without a default"),
    ],
    ids=["new-required-field", "type-change", "required-field-removed"],
)
def test_breaking_changes_are_refused(change, expected):
    registry = ContractRegistry().load_dir()
    new = _v2(_schema())
    change(_payload_fields(new))
    with pytest.raises(IncompatibleSchemaError, match=expected):
        registry.register(new)
    assert registry.versions("sales.sale.completed") == [1]


def test_removing_an_enum_symbol_breaks_new_readers_of_old_data():
    old = _schema("manufacturing.batch.status")
    new = _v2(copy.deepcopy(old))
    status = next(f for f in _payload_fields(new) if f["name"] == "status")
    status["type"]["symbols"].remove("ON_HOLD")
    problems = compatibility_problems(old, new, Mode.BACKWARD)
    assert problems and "ON_HOLD" in problems[0]
    # Adding a symbol is the mirror image: old readers cannot read it.
    assert compatibility_problems(new, old, Mode.FORWARD)


def test_widening_int_to_long_is_backward_but_not_forward_compatible():
    old = _schema()
    new = _v2(copy.deepcopy(old))
    _payload_fields(new)[3]["type"] = "long"
    assert compatibility_problems(old, new, Mode.BACKWARD) == []
    assert compatibility_problems(old, new, Mode.FORWARD)


def test_reregistering_a_version_with_different_content_is_refused():
    registry = ContractRegistry().load_dir()
    changed = _schema()
    changed["doc"] = "edited in place"
    with pytest.raises(IncompatibleSchemaError, match="already registered"):
        registry.register(changed)
