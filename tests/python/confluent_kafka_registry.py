#!/usr/bin/env python3
"""The built-in schema registry with confluent-kafka-python's SchemaRegistryClient and its
Avro serializer and deserializer (librdkafka for the Kafka side).

Usage: confluent_kafka_registry.py BOOTSTRAP        (BROOK_HTTP=host:port names the registry)

  * AvroSerializer registers a loan schema under <topic>-value on first use; a producer sends
    three loans, a consumer reads them back through AvroDeserializer, equal to what was sent;
  * registering the same schema again gets the same id; a backward-compatible v2 (a field
    added with a default) is accepted as version 2 and v1 data still deserializes; an
    incompatible change (a field's type changed) is refused with 409;
  * get_latest_version, get_versions, get_subjects, get_schema(id), lookup_schema,
    test_compatibility, set_compatibility / get_compatibility answer as Confluent's do;
    an unknown subject is 40401, an unknown id 40403;
  * produce-time validation: on a topic with confluent.value.schema.validation=true a value
    without a schema id, or with an id not registered under <topic>-value, is refused with
    INVALID_RECORD; one the AvroSerializer framed is accepted;
  * JSON Schema: JSONSerializer registers a schema and frames three events, JSONDeserializer
    reads them back; an incompatible change (a property that became required) is 409;
  * brook.value.schema.validation=full also refuses a registered id followed by bytes that are
    not a datum of the schema, and accepts the serializer's output;
  * Protobuf: ProtobufSerializer registers a message type (as a base64 descriptor) and
    frames a message; ProtobufDeserializer (fetching the schema in the serialized format)
    reads it back;
  * delete_subject (soft, then permanent) and the subject is gone.

Exits 0 on success; on failure prints "FAIL: ..." and exits non-zero.
"""

import os
import uuid

import harness  # first: importing arms the watchdog before the client library loads
from harness import check, check_eq, ok, step

import confluent_kafka  # noqa: E402
from confluent_kafka import Consumer, KafkaError, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient  # noqa: E402
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer  # noqa: E402
from confluent_kafka.schema_registry.error import SchemaRegistryError  # noqa: E402
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer  # noqa: E402
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer  # noqa: E402
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402

LOAN_V1 = """{"type": "record", "name": "Loan", "namespace": "bank",
  "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "long"}]}"""
LOAN_V2 = """{"type": "record", "name": "Loan", "namespace": "bank",
  "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "long"},
             {"name": "rate", "type": "double", "default": 0.0}]}"""
LOAN_BAD = """{"type": "record", "name": "Loan", "namespace": "bank",
  "fields": [{"name": "id", "type": "int"}, {"name": "amount", "type": "long"}]}"""


def error_code(call):
    try:
        call()
    except SchemaRegistryError as e:
        return e.error_code
    return None


def run(bootstrap):
    registry = SchemaRegistryClient({"url": "http://%s" % os.environ["BROOK_HTTP"]})
    topic = "loans-" + uuid.uuid4().hex[:8]
    subject = topic + "-value"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)

    step("produce with AvroSerializer")
    serializer = AvroSerializer(registry, LOAN_V1)
    producer = Producer({"bootstrap.servers": bootstrap})
    sent = [{"id": "loan-%d" % i, "amount": 1000 * i} for i in range(3)]
    for loan in sent:
        value = serializer(loan, SerializationContext(topic, MessageField.VALUE))
        check_eq(value[0], 0, "magic byte")
        producer.produce(topic, value=value)
    check_eq(producer.flush(10), 0, "unsent records")
    v1 = registry.get_latest_version(subject)
    check_eq(v1.version, 1, "version of the first registration")
    ok("AvroSerializer registered %s as id %d" % (subject, v1.schema_id))

    step("consume with AvroDeserializer")
    deserializer = AvroDeserializer(registry)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reg-" + topic,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got = []
    while len(got) < len(sent):
        msg = consumer.poll(10)
        check(msg is not None, "a record within 10 s (got %d)" % len(got))
        check(msg.error() is None, "consume error %s" % msg.error())
        got.append(deserializer(msg.value(), SerializationContext(topic, MessageField.VALUE)))
    consumer.close()
    check_eq(got, sent, "the loans read back")
    ok("AvroDeserializer read back what was sent")

    step("registration rules")
    again = registry.register_schema(subject, Schema(LOAN_V1, "AVRO"))
    check_eq(again, v1.schema_id, "the same schema registered again")
    v2_id = registry.register_schema(subject, Schema(LOAN_V2, "AVRO"))
    check(v2_id != v1.schema_id, "v2 has an id of its own")
    # (get_latest_version would answer from the client's cache.)
    check_eq(registry.get_version(subject, 2).schema_id, v2_id, "version 2")
    check_eq(registry.get_versions(subject), [1, 2], "versions")
    check(subject in registry.get_subjects(), "subject listed")
    check_eq(error_code(lambda: registry.register_schema(subject, Schema(LOAN_BAD, "AVRO"))), 409,
             "an incompatible change")
    check_eq(registry.test_compatibility(subject, Schema(LOAN_BAD, "AVRO")), False,
             "test_compatibility of the incompatible change")
    check_eq(registry.test_compatibility(subject, Schema(LOAN_V2, "AVRO")), True,
             "test_compatibility of v2")
    fetched = registry.get_schema(v2_id)
    check("rate" in fetched.schema_str, "get_schema by id")
    found = registry.lookup_schema(subject, Schema(LOAN_V1, "AVRO"))
    check_eq((found.version, found.schema_id), (1, v1.schema_id), "lookup_schema of v1")
    check_eq(error_code(lambda: registry.get_latest_version(subject + "-missing")), 40401,
             "an unknown subject")
    check_eq(error_code(lambda: registry.get_schema(987654)), 40403, "an unknown id")
    ok("same schema same id, v2 accepted, incompatible refused with 409, lookups")

    step("old data with the new schema in place")
    reader = AvroDeserializer(registry, LOAN_V2)
    value = serializer(sent[0], SerializationContext(topic, MessageField.VALUE))
    check_eq(reader(value, SerializationContext(topic, MessageField.VALUE)),
             dict(sent[0], rate=0.0), "v1 data read with v2 (the default filled in)")
    ok("v1 data reads with v2")

    step("compatibility config")
    check_eq(registry.set_compatibility(subject, "FULL"), {"compatibility": "FULL"}, "set_compatibility")
    check_eq(registry.get_compatibility(subject), "FULL", "get_compatibility")
    check_eq(registry.get_compatibility(), "BACKWARD", "the global default")
    ok("compatibility configured per subject")

    step("produce-time validation")
    checked = topic + "-checked"
    admin.create_topics([NewTopic(checked, 1, 1, config={"confluent.value.schema.validation": "true"})])[
        checked].result(10)
    checked_serializer = AvroSerializer(registry, LOAN_V1)
    outcomes = []

    def deliver(err, msg):
        outcomes.append(err.code() if err else None)

    strict = Producer({"bootstrap.servers": bootstrap, "retries": 0})
    framed = checked_serializer(sent[0], SerializationContext(checked, MessageField.VALUE))
    strict.produce(checked, value=b"plain text, no schema id", on_delivery=deliver)
    strict.flush(10)
    strict.produce(checked, value=b"\x00\x00\x00\x03\xe7payload", on_delivery=deliver)
    strict.flush(10)
    strict.produce(checked, value=framed, on_delivery=deliver)
    strict.flush(10)
    check_eq(outcomes, [KafkaError.INVALID_RECORD, KafkaError.INVALID_RECORD, None],
             "delivery of: no id, an unregistered id, a registered one")
    ok("confluent.value.schema.validation refuses values without a registered schema id")

    full = topic + "-full"
    admin.create_topics([NewTopic(full, 1, 1, config={"brook.value.schema.validation": "full"})])[
        full].result(10)
    full_serializer = AvroSerializer(registry, LOAN_V1)
    good = full_serializer(sent[1], SerializationContext(full, MessageField.VALUE))
    outcomes.clear()
    strict.produce(full, value=good[:5] + b"\xff\xff\xff", on_delivery=deliver)  # registered id, not a Loan
    strict.flush(10)
    strict.produce(full, value=good, on_delivery=deliver)
    strict.flush(10)
    check_eq(outcomes, [KafkaError.INVALID_RECORD, None], "delivery of: a garbage payload, a real Loan")
    ok("brook.value.schema.validation=full refuses a payload that is not data of its schema")

    step("JSON Schema")
    json_topic = topic + "-json"
    json_schema = """{"$schema": "http://json-schema.org/draft-07/schema#", "title": "Payment",
      "type": "object", "properties": {"id": {"type": "string"}, "cents": {"type": "integer"}},
      "required": ["id"]}"""
    to_dict = lambda obj, ctx: obj  # noqa: E731 - the events are dicts already
    json_serializer = JSONSerializer(json_schema, registry, to_dict)
    payments = [{"id": "p-%d" % i, "cents": 100 * i} for i in range(3)]
    for p in payments:
        producer.produce(json_topic, value=json_serializer(p, SerializationContext(json_topic, MessageField.VALUE)))
    check_eq(producer.flush(10), 0, "unsent JSON records")
    json_deserializer = JSONDeserializer(json_schema, from_dict=lambda d, ctx: d)
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "json-" + topic,
                       "auto.offset.reset": "earliest"})
    reader.subscribe([json_topic])
    read = []
    while len(read) < len(payments):
        msg = reader.poll(10)
        check(msg is not None and msg.error() is None, "a JSON record within 10 s")
        read.append(json_deserializer(msg.value(), SerializationContext(json_topic, MessageField.VALUE)))
    reader.close()
    check_eq(read, payments, "JSON events read back")
    json_subject = json_topic + "-value"
    check_eq(registry.get_latest_version(json_subject).schema.schema_type, "JSON", "schemaType")
    stricter = json_schema.replace('"required": ["id"]', '"required": ["id", "cents"]')
    check_eq(error_code(lambda: registry.register_schema(json_subject, Schema(stricter, "JSON"))), 409,
             "a property that became required")
    ok("JSONSerializer and JSONDeserializer round trip; an incompatible JSON change is 409")

    step("Protobuf")
    proto_topic = topic + "-proto"
    file = descriptor_pb2.FileDescriptorProto(name="payment-%s.proto" % topic, package="bank", syntax="proto3")
    message = file.message_type.add(name="Payment")
    message.field.add(name="id", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    message.field.add(name="cents", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    Payment = message_factory.GetMessageClass(pool.FindMessageTypeByName("bank.Payment"))
    proto_serializer = ProtobufSerializer(Payment, registry, {"use.deprecated.format": False})
    proto_ctx = SerializationContext(proto_topic, MessageField.VALUE)
    framed = proto_serializer(Payment(id="p-9", cents=900), proto_ctx)
    check_eq(framed[0], 0, "magic byte")
    proto_deserializer = ProtobufDeserializer(Payment, {"use.deprecated.format": False}, registry)
    back = proto_deserializer(framed, proto_ctx)
    check_eq((back.id, back.cents), ("p-9", 900), "the Payment read back")
    latest = registry.get_latest_version(proto_topic + "-value")
    check_eq(latest.schema.schema_type, "PROTOBUF", "schemaType")
    ok("ProtobufSerializer registered a serialized descriptor; ProtobufDeserializer read it back")

    proto_full = topic + "-proto-full"
    admin.create_topics([NewTopic(proto_full, 1, 1, config={"brook.value.schema.validation": "full"})])[
        proto_full].result(10)
    full_ctx = SerializationContext(proto_full, MessageField.VALUE)
    good = proto_serializer(Payment(id="p-10", cents=1000), full_ctx)
    outcomes.clear()
    strict.produce(proto_full, value=good[:6] + b"\x0a\x05ab", on_delivery=deliver)  # a string cut short
    strict.flush(10)
    strict.produce(proto_full, value=good, on_delivery=deliver)
    strict.flush(10)
    check_eq(outcomes, [KafkaError.INVALID_RECORD, None], "delivery of: a broken Payment, a real one")
    ok("brook.value.schema.validation=full decodes Protobuf payloads")

    step("delete")
    check_eq(registry.delete_subject(subject), [1, 2], "soft delete")
    check(subject not in registry.get_subjects(), "not listed after a soft delete")
    check_eq(registry.delete_subject(subject, permanent=True), [1, 2], "permanent delete")
    check_eq(error_code(lambda: registry.get_versions(subject)), 40401, "gone")
    check("rate" in registry.get_schema(v2_id).schema_str, "ids stay resolvable")
    ok("soft then permanent deletion")


def main():
    harness.main(run, lambda: "confluent-kafka %s schema registry: passed" % confluent_kafka.__version__)


if __name__ == "__main__":
    main()
