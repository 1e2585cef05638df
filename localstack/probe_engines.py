#!/usr/bin/env python3
"""Measure how a local AWS emulator behaves where Strata's tests could depend on it.

Usage: probe_engines.py ENDPOINT_URL [PROBE ...]     (e.g. http://127.0.0.1:4566 latency kms)

PROBE names select probes by substring of their function name (default: all).

Needs only boto3. Creates uniquely named resources (prefix `probe-<random>`), prints one finding per
line as `name: value` (`name: ERROR <code>` when a call failed), and deletes what it created. Region
us-east-1; dummy credentials are set when none are in the environment. Takes under ~3 minutes.

Run it against each engine and diff the outputs, e.g.:

    localstack/.venv/bin/python localstack/probe_engines.py "$(localstack/start)"

What AWS documents, for reading the output:
- Query stops a page after 1 MB of data read, and a page cut by Limit may carry a LastEvaluatedKey
  even when no item is left: only its absence means the end.
- Transactions: a concurrent write to an item in a transaction can cancel it with reason
  TransactionConflict; a cancelled transaction lists one reason per action, in order (None,
  ConditionalCheckFailed with Item when ALL_OLD is asked, ...).
- Capacity: 1 WCU per started 1 KB written, 1 RCU per started 4 KB read consistently (half eventually);
  for a Query the sizes of the items read are summed first.
- A GSI is eventually consistent (ConsistentRead is refused on it); TTL deletes expired items in the
  background, typically within days, so GetItem still returns them right after the put.
- KMS: a wrong encryption context gives InvalidCiphertextException, a disabled key DisabledException,
  a key pending deletion KMSInvalidStateException.
- PutEvents: an entry is limited to 256 KB.
"""

import json
import os
import statistics
import sys
import threading
import time
import traceback
import uuid
from collections import Counter

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

REGION = "us-east-1"
for _k, _v in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")):
    os.environ.setdefault(_k, _v)
os.environ.setdefault("AWS_DEFAULT_REGION", REGION)

ENDPOINT = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:4566"
PREFIX = f"probe-{uuid.uuid4().hex[:8]}"
# No SDK retries: we want to see each raw answer (a retried TransactionConflict would hide it).
CONFIG = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=60)
CLEANUPS = []  # callables, run in reverse at the end


def client(service):
    return boto3.client(service, endpoint_url=ENDPOINT, region_name=REGION, config=CONFIG)


def out(name, value):
    print(f"{name}: {value}", flush=True)


def code(e):
    if isinstance(e, ClientError):
        return e.response.get("Error", {}).get("Code", "?")
    return type(e).__name__


def message(e):
    if isinstance(e, ClientError):
        return e.response.get("Error", {}).get("Message", "")
    return str(e)


def attempt(name, fn):
    """Print fn()'s value, or `ERROR <code>`."""
    try:
        value = fn()
    except Exception as e:  # noqa: BLE001 - a probe reports, it never stops the run
        value = f"ERROR {code(e)}"
    out(name, value)
    return value


def call_code(fn):
    """'ok' if fn() succeeds, else its error code."""
    try:
        fn()
        return "ok"
    except Exception as e:  # noqa: BLE001
        return code(e)


def median_ms(fn, n):
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(samples), 2)


# ---------------------------------------------------------------- DynamoDB helpers

ddb = client("dynamodb")


def create_table(suffix, gsi=False, stream=False):
    name = f"{PREFIX}-{suffix}"
    attrs = [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "N"}]
    kwargs = dict(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    if gsi:
        attrs += [{"AttributeName": "gpk", "AttributeType": "S"}, {"AttributeName": "gsk", "AttributeType": "N"}]
        kwargs["GlobalSecondaryIndexes"] = [
            {
                "IndexName": "gsi1",
                "KeySchema": [
                    {"AttributeName": "gpk", "KeyType": "HASH"},
                    {"AttributeName": "gsk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ]
    if stream:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    kwargs["AttributeDefinitions"] = attrs
    ddb.create_table(**kwargs)
    CLEANUPS.append(lambda: ddb.delete_table(TableName=name))
    deadline = time.time() + 30
    while time.time() < deadline:
        if ddb.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE":
            break
        time.sleep(0.2)
    return name


def key(pk, sk):
    return {"pk": {"S": pk}, "sk": {"N": str(sk)}}


def item(pk, sk, size=0, **extra):
    it = key(pk, sk)
    if size:
        it["data"] = {"S": "x" * size}
    it.update(extra)
    return it


def batch_put(table, items):
    for i in range(0, len(items), 25):
        req = {table: [{"PutRequest": {"Item": it}} for it in items[i : i + 25]]}
        while req:
            req = ddb.batch_write_item(RequestItems=req).get("UnprocessedItems") or None


# ---------------------------------------------------------------- probes


def probe_query_pages():
    t = create_table("pages")
    for i in range(11):
        ddb.put_item(TableName=t, Item=item("p", i, 300_000))
    for forward in (True, False):
        name = "query_1mb_pages_" + ("forward" if forward else "backward")

        def pages(forward=forward):
            sizes, lek, n = [], None, 0
            while True:
                kw = dict(
                    TableName=t,
                    KeyConditionExpression="pk = :p",
                    ExpressionAttributeValues={":p": {"S": "p"}},
                    ConsistentRead=True,
                    ScanIndexForward=forward,
                )
                if lek:
                    kw["ExclusiveStartKey"] = lek
                r = ddb.query(**kw)
                sizes.append(len(r["Items"]))
                lek = r.get("LastEvaluatedKey")
                n += 1
                if not lek or n > 20:
                    return f"items per page {sizes} (11 items of ~300 KB)"

        attempt(name, pages)

    # Limit: 3 small items under pk "q".
    for i in range(3):
        ddb.put_item(TableName=t, Item=item("q", i))

    def lek_with_limit(limit, start=None):
        kw = dict(
            TableName=t,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "q"}},
            Limit=limit,
        )
        if start:
            kw["ExclusiveStartKey"] = start
        r = ddb.query(**kw)
        return len(r["Items"]), r.get("LastEvaluatedKey")

    def limit_equal():
        n, lek = lek_with_limit(3)
        return f"items={n} LastEvaluatedKey={'present' if lek else 'absent'}"

    def limit_larger():
        n, lek = lek_with_limit(4)
        return f"items={n} LastEvaluatedKey={'present' if lek else 'absent'}"

    def limit_second_page():
        n1, lek1 = lek_with_limit(2)
        n2, lek2 = lek_with_limit(2, lek1)
        return f"pages [{n1}, {n2}] second page LastEvaluatedKey={'present' if lek2 else 'absent'}"

    attempt("query_limit3_of_3_items", limit_equal)
    attempt("query_limit4_of_3_items", limit_larger)
    attempt("query_limit2_of_3_items", limit_second_page)


def probe_transactions():
    t = create_table("txn")
    ddb.put_item(TableName=t, Item=item("t", 0, n={"N": "0"}))
    per_thread, threads = 25, 2
    outcomes, lock = Counter(), threading.Lock()
    barrier = threading.Barrier(threads)
    durations, spans = [], []

    def worker(tid):
        c = client("dynamodb")
        barrier.wait()
        for i in range(per_thread):
            start = time.perf_counter()
            try:
                c.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": t,
                                "Key": key("t", 0),
                                "UpdateExpression": "ADD n :one",
                                "ExpressionAttributeValues": {":one": {"N": "1"}},
                            }
                        },
                        {"Put": {"TableName": t, "Item": item("t", 1000 * (tid + 1) + i, 50_000)}},
                    ]
                )
                o = "ok"
            except ClientError as e:
                reasons = e.response.get("CancellationReasons") or []
                o = code(e) + "(" + ",".join(r.get("Code", "?") for r in reasons) + ")" if reasons else code(e)
            except Exception as e:  # noqa: BLE001
                o = code(e)
            end = time.perf_counter()
            with lock:
                outcomes[o] += 1
                durations.append((end - start) * 1000)
                spans.append((tid, start, end))

    ths = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    out("txn_concurrent_same_item_outcomes", dict(outcomes) | {"of": threads * per_thread})
    attempt(
        "txn_concurrent_same_item_final_counter",
        lambda: ddb.get_item(TableName=t, Key=key("t", 0), ConsistentRead=True)["Item"]["n"]["N"],
    )
    out("txn_concurrent_median_ms", round(statistics.median(durations), 1) if durations else "n/a")
    # How many transactions were in flight while one of the other thread was: shows they really raced.
    overlapped = sum(
        any(t2 != t1 and s2 < e1 and s1 < e2 for t2, s2, e2 in spans) for t1, s1, e1 in spans
    )
    out("txn_concurrent_in_flight_together", f"{overlapped}/{len(spans)}")

    # A transaction whose ConditionCheck fails.
    ddb.put_item(TableName=t, Item=item("c", 1, v={"N": "1"}))

    def failing_check():
        try:
            ddb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": t, "Item": item("c", 2), "ConditionExpression": "attribute_not_exists(pk)"}},
                    {
                        "ConditionCheck": {
                            "TableName": t,
                            "Key": key("c", 1),
                            "ConditionExpression": "v = :two",
                            "ExpressionAttributeValues": {":two": {"N": "2"}},
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                    {
                        "Update": {
                            "TableName": t,
                            "Key": key("c", 3),
                            "UpdateExpression": "SET x = :x",
                            "ExpressionAttributeValues": {":x": {"N": "1"}},
                        }
                    },
                ]
            )
            return "succeeded (unexpected)", None
        except ClientError as e:
            return e, e.response.get("CancellationReasons")

    e, reasons = failing_check()
    if isinstance(e, str):
        out("txn_condition_check_fail", e)
    else:
        out("txn_condition_check_fail_code", code(e))
        if reasons is None:
            out("txn_condition_check_fail_reasons", "absent")
        else:
            shape = [
                {k: (v if k != "Item" else "present" if v else "empty") for k, v in r.items() if k != "Message"}
                | ({"Message": "present"} if r.get("Message") else {})
                for r in reasons
            ]
            out("txn_condition_check_fail_reasons", json.dumps(shape))
            out(
                "txn_condition_check_fail_item_returned",
                any(r.get("Item") for r in reasons),
            )
            out(
                "txn_condition_check_fail_reason_messages",
                json.dumps([r.get("Message") for r in reasons]),
            )
        out("txn_condition_check_fail_message", json.dumps(message(e)))
    attempt(
        "txn_condition_check_fail_rolled_back",
        lambda: "yes" if "Item" not in ddb.get_item(TableName=t, Key=key("c", 2), ConsistentRead=True) else "NO",
    )

    # Two actions on the same item in one transaction (AWS: ValidationException).
    def same_item_twice():
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": t, "Item": item("d", 1)}},
                {
                    "Update": {
                        "TableName": t,
                        "Key": key("d", 1),
                        "UpdateExpression": "SET x = :x",
                        "ExpressionAttributeValues": {":x": {"N": "1"}},
                    }
                },
            ]
        )

    out("txn_two_actions_same_item", call_code(same_item_twice))


def probe_conditional_put():
    t = create_table("cond")
    ddb.put_item(TableName=t, Item=item("a", 1, v={"N": "7"}))
    try:
        ddb.put_item(
            TableName=t,
            Item=item("a", 1, v={"N": "8"}),
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        out("put_condition_fail_all_old", "put succeeded (unexpected)")
    except ClientError as e:
        out("put_condition_fail_code", code(e))
        old = e.response.get("Item")
        out("put_condition_fail_all_old_item", json.dumps(old) if old else "absent")
        out("conditional_check_failed_message", json.dumps(message(e)))
    try:
        ddb.put_item(
            TableName=t,
            Item=item("a", 1, v={"N": "8"}),
            ConditionExpression="attribute_not_exists(pk)",
        )
    except ClientError as e:
        out("put_condition_fail_without_return_values_item", "present" if e.response.get("Item") else "absent")
    try:
        ddb.put_item(TableName=t, Item={"pk": {"N": "1"}, "sk": {"N": "1"}})
        out("validation_key_wrong_type", "accepted (unexpected)")
    except ClientError as e:
        out("validation_key_wrong_type_code", code(e))
        out("validation_key_wrong_type_message", json.dumps(message(e)))
    try:
        ddb.put_item(TableName=t, Item={"pk": {"S": "a"}})
        out("validation_missing_sort_key", "accepted (unexpected)")
    except ClientError as e:
        out("validation_missing_sort_key_code", code(e))
        out("validation_missing_sort_key_message", json.dumps(message(e)))
    try:
        ddb.put_item(TableName=t, Item=item("big", 1, 410_000))
        out("put_item_over_400kb", "accepted")
    except ClientError as e:
        out("put_item_over_400kb", f"ERROR {code(e)} {json.dumps(message(e))}")


def probe_capacity():
    t = create_table("cap")

    def put3k():
        # pk "c" (1+1 bytes) + sk (2+~1 bytes) + data (4 + 3000 bytes) ~= 3 KB
        r = ddb.put_item(TableName=t, Item=item("c", 0, 3000), ReturnConsumedCapacity="TOTAL")
        return r.get("ConsumedCapacity", "absent")

    attempt("capacity_put_3kb", put3k)
    attempt(
        "capacity_get_3kb_consistent",
        lambda: ddb.get_item(
            TableName=t, Key=key("c", 0), ConsistentRead=True, ReturnConsumedCapacity="TOTAL"
        ).get("ConsumedCapacity", "absent"),
    )
    batch_put(t, [item("q", i, 1000) for i in range(10)])
    for consistent in (True, False):
        attempt(
            "capacity_query_10kb_" + ("consistent" if consistent else "eventual"),
            lambda consistent=consistent: ddb.query(
                TableName=t,
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": "q"}},
                ConsistentRead=consistent,
                ReturnConsumedCapacity="TOTAL",
            ).get("ConsumedCapacity", "absent"),
        )


def probe_gsi():
    t = create_table("gsi", gsi=True)
    visible = 0
    for i in range(20):
        g = f"g{i}"
        ddb.put_item(TableName=t, Item=item("p", i, gpk={"S": g}, gsk={"N": "1"}))
        r = ddb.query(
            TableName=t,
            IndexName="gsi1",
            KeyConditionExpression="gpk = :g",
            ExpressionAttributeValues={":g": {"S": g}},
        )
        visible += bool(r["Items"])
    out("gsi_visible_right_after_put", f"{visible}/20")
    out(
        "gsi_consistent_read",
        call_code(
            lambda: ddb.query(
                TableName=t,
                IndexName="gsi1",
                KeyConditionExpression="gpk = :g",
                ExpressionAttributeValues={":g": {"S": "g0"}},
                ConsistentRead=True,
            )
        ),
    )


def probe_ttl():
    t = create_table("ttl")
    out(
        "ttl_update_time_to_live",
        call_code(
            lambda: ddb.update_time_to_live(
                TableName=t, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
            )
        ),
    )
    attempt(
        "ttl_describe_status",
        lambda: ddb.describe_time_to_live(TableName=t)["TimeToLiveDescription"].get("TimeToLiveStatus"),
    )
    ddb.put_item(TableName=t, Item=item("e", 1, expires_at={"N": str(int(time.time()) - 3600)}))
    attempt(
        "ttl_expired_item_get_right_after_put",
        lambda: "returned" if "Item" in ddb.get_item(TableName=t, Key=key("e", 1), ConsistentRead=True) else "gone",
    )
    time.sleep(2)
    attempt(
        "ttl_expired_item_get_after_2s",
        lambda: "returned" if "Item" in ddb.get_item(TableName=t, Key=key("e", 1), ConsistentRead=True) else "gone",
    )


def probe_kms():
    kms = client("kms")

    k = kms.create_key(Description=PREFIX)["KeyMetadata"]["KeyId"]
    scheduled = []
    CLEANUPS.append(lambda: scheduled or kms.schedule_key_deletion(KeyId=k, PendingWindowInDays=7))
    ctx = {"stream": "a"}
    blob = kms.encrypt(KeyId=k, Plaintext=b"hello", EncryptionContext=ctx)["CiphertextBlob"]
    out("kms_decrypt_right_context", call_code(lambda: kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)))
    out(
        "kms_decrypt_wrong_context",
        call_code(lambda: kms.decrypt(CiphertextBlob=blob, EncryptionContext={"stream": "b"})),
    )
    out("kms_decrypt_no_context", call_code(lambda: kms.decrypt(CiphertextBlob=blob)))

    def use(prefix, key_id):
        out(f"{prefix}_encrypt", call_code(lambda: kms.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext=ctx)))
        out(f"{prefix}_decrypt", call_code(lambda: kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)))
        out(
            f"{prefix}_generate_data_key",
            call_code(lambda: kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=ctx)),
        )

    kms.disable_key(KeyId=k)
    attempt("kms_disabled_key_state", lambda: kms.describe_key(KeyId=k)["KeyMetadata"]["KeyState"])
    use("kms_disabled", k)
    kms.enable_key(KeyId=k)
    kms.schedule_key_deletion(KeyId=k, PendingWindowInDays=7)
    scheduled.append(True)
    attempt("kms_pending_deletion_key_state", lambda: kms.describe_key(KeyId=k)["KeyMetadata"]["KeyState"])
    use("kms_pending_deletion", k)


def probe_sqs_events():
    sqs = client("sqs")
    events = client("events")
    qname = f"{PREFIX}-q"
    qurl = sqs.create_queue(QueueName=qname)["QueueUrl"]
    CLEANUPS.append(lambda: sqs.delete_queue(QueueUrl=qurl))
    out("sqs_queue_url", qurl)
    qarn = sqs.get_queue_attributes(QueueUrl=qurl, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    out("sqs_queue_arn", qarn)
    bus = f"{PREFIX}-bus"
    bus_arn = events.create_event_bus(Name=bus)["EventBusArn"]
    CLEANUPS.append(lambda: events.delete_event_bus(Name=bus))
    sqs.set_queue_attributes(
        QueueUrl=qurl,
        Attributes={
            "Policy": json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "events.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": qarn,
                        }
                    ],
                }
            )
        },
    )
    rule = f"{PREFIX}-rule"
    events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps({"source": ["probe.strata"]}))
    CLEANUPS.append(lambda: events.delete_rule(Name=rule, EventBusName=bus))
    events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "q", "Arn": qarn}])
    CLEANUPS.append(lambda: events.remove_targets(Rule=rule, EventBusName=bus, Ids=["q"]))

    def wait_for_message(deadline_s, t0=None):
        t0 = t0 or time.time()
        while time.time() - t0 < deadline_s:
            msgs = sqs.receive_message(QueueUrl=qurl, WaitTimeSeconds=1, MaxNumberOfMessages=10).get("Messages", [])
            if msgs:
                for m in msgs:
                    sqs.delete_message(QueueUrl=qurl, ReceiptHandle=m["ReceiptHandle"])
                return round(time.time() - t0, 2), msgs[0]["Body"]
        return None, None

    t0 = time.time()
    r = events.put_events(
        Entries=[{"Source": "probe.strata", "DetailType": "t", "Detail": json.dumps({"n": 1}), "EventBusName": bus}]
    )
    out("events_put_failed_entry_count", r.get("FailedEntryCount"))
    secs, body = wait_for_message(10, t0)
    if secs is None:
        out("events_rule_to_sqs", "not arrived within 10 s")
    else:
        out("events_rule_to_sqs_seconds", secs)
        try:
            env = json.loads(body)
            out("events_sqs_body_keys", sorted(env))
            out("events_sqs_body_detail", json.dumps(env.get("detail")))
        except ValueError:
            out("events_sqs_body", body[:200])

    # Detail over the 256 KB entry limit.
    try:
        r = events.put_events(
            Entries=[
                {
                    "Source": "probe.strata",
                    "DetailType": "big",
                    "Detail": json.dumps({"d": "x" * 300_000}),
                    "EventBusName": bus,
                }
            ]
        )
        failed = r.get("FailedEntryCount")
        codes = [e.get("ErrorCode") for e in r.get("Entries", []) if e.get("ErrorCode")]
        out("events_detail_300kb", f"accepted FailedEntryCount={failed} entry errors={codes}")
        if not failed:
            secs, body = wait_for_message(5, time.time())
            out("events_detail_300kb_delivered", f"yes after {secs} s" if secs is not None else "not within 5 s")
    except Exception as e:  # noqa: BLE001
        out("events_detail_300kb", f"ERROR {code(e)} {json.dumps(message(e)[:160])}")

    # Unknown bus.
    try:
        r = events.put_events(
            Entries=[{"Source": "probe.strata", "DetailType": "t", "Detail": "{}", "EventBusName": f"{PREFIX}-none"}]
        )
        codes = [e.get("ErrorCode") for e in r.get("Entries", []) if e.get("ErrorCode")]
        out("events_put_to_missing_bus", f"FailedEntryCount={r.get('FailedEntryCount')} entry errors={codes}")
    except Exception as e:  # noqa: BLE001
        out("events_put_to_missing_bus", f"ERROR {code(e)}")


def probe_streams():
    streams = client("dynamodbstreams")
    t = create_table("stream", stream=True)
    arns = [s["StreamArn"] for s in streams.list_streams(TableName=t).get("Streams", [])]
    out("streams_list_streams_count", len(arns))
    if not arns:
        return
    arn = arns[0]
    # A new table's stream is ENABLING for a moment; writes before ENABLED may never reach it.
    t0 = time.time()
    status = None
    while time.time() - t0 < 30:
        status = streams.describe_stream(StreamArn=arn)["StreamDescription"].get("StreamStatus")
        if status == "ENABLED":
            break
        time.sleep(0.1)
    out("streams_status_after_table_active", status)
    out("streams_seconds_until_enabled", round(time.time() - t0, 2))
    t0 = time.time()
    ddb.put_item(TableName=t, Item=item("s", 1, v={"N": "1"}))
    seen = None
    while time.time() - t0 < 15 and seen is None:
        shards = streams.describe_stream(StreamArn=arn)["StreamDescription"].get("Shards", [])
        for sh in shards:
            it = streams.get_shard_iterator(
                StreamArn=arn, ShardId=sh["ShardId"], ShardIteratorType="TRIM_HORIZON"
            ).get("ShardIterator")
            for _ in range(5):
                if not it:
                    break
                r = streams.get_records(ShardIterator=it)
                if r.get("Records"):
                    seen = r["Records"][0]
                    break
                it = r.get("NextShardIterator")
            if seen:
                break
        if seen is None:
            time.sleep(0.2)
    if seen is None:
        out("streams_record_seen", "not within 15 s")
    else:
        out("streams_record_seen_seconds", round(time.time() - t0, 2))
        out("streams_record_event_name", seen.get("eventName"))
        out("streams_record_keys", sorted(seen.get("dynamodb", {})))


def probe_latency():
    t = create_table("lat")
    out("latency_put_1kb_median_ms", median_ms(lambda: ddb.put_item(TableName=t, Item=item("l", 0, 1000)), 50))
    out(
        "latency_get_1kb_median_ms",
        median_ms(lambda: ddb.get_item(TableName=t, Key=key("l", 0), ConsistentRead=True), 50),
    )
    batch_put(t, [item("q", i, 20) for i in range(100)])

    def q100():
        r = ddb.query(
            TableName=t,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "q"}},
            ConsistentRead=True,
        )
        assert len(r["Items"]) == 100, len(r["Items"])

    out("latency_query_100_items_median_ms", median_ms(q100, 20))
    start = time.perf_counter()
    batch_put(t, [item(f"other{i % 50}", i, 20) for i in range(1000)])
    out("latency_batch_write_per_item_ms", round((time.perf_counter() - start) * 1000 / 1000, 2))
    out("latency_query_100_items_with_1000_other_items_in_table_median_ms", median_ms(q100, 20))


PROBES = [
    probe_query_pages,
    probe_transactions,
    probe_conditional_put,
    probe_capacity,
    probe_gsi,
    probe_ttl,
    probe_kms,
    probe_sqs_events,
    probe_streams,
    probe_latency,
]


def main():
    out("endpoint", ENDPOINT)
    started = time.time()
    try:
        only = sys.argv[2:]
        for p in PROBES:
            if only and not any(o in p.__name__ for o in only):
                continue
            t = time.time()
            try:
                p()
            except Exception as e:  # noqa: BLE001
                out(p.__name__, f"ERROR {code(e)}")
                traceback.print_exc(file=sys.stderr)
            print(f"# {p.__name__} took {time.time() - t:.1f} s", file=sys.stderr, flush=True)
    finally:
        failures = []
        for c in reversed(CLEANUPS):
            try:
                c()
            except Exception as e:  # noqa: BLE001
                failures.append(code(e))
        out("cleanup_failures", failures or 0)
        out("total_seconds", round(time.time() - started, 1))


if __name__ == "__main__":
    main()
