#!/usr/bin/env bash
# The shipping step of the order saga, served by a shell script with kcat as its only
# Kafka client: a participant in any language only needs to follow wire contract v1.
#
#   KAFKA_BOOTSTRAP_SERVERS=localhost:9092 ./shipping.sh
#
# It consumes shipping.commands (consumer group $SHIPPING_GROUP) and answers each
# command on shipping.replies, keyed by the saga id:
#
#   shipping.schedule -> shipping.scheduled {shipment_id, carrier, day}
#                        or shipping.failed {reason, carrier} when SHIPPING_FAIL=1
#   shipping.cancel   -> shipping.cancelled {shipment_id}
#
# The reply's causationid is the command's id. Idempotent by command id: every
# answer is appended to $SHIPPING_STATE_FILE before it is sent, and a command
# seen again is answered with the recorded reply and does nothing else. The
# shipment id is derived from the saga id, so a retried command (new id, same
# saga) books the same shipment.
#
# Environment (all optional but the first):
#   KAFKA_BOOTSTRAP_SERVERS   host:port[,host:port]
#   KAFKA_SECURITY_PROTOCOL   PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (as for sagas)
#   KAFKA_SSL_CAFILE, KAFKA_SSL_CERTFILE, KAFKA_SSL_KEYFILE, KAFKA_SSL_KEY_PASSWORD
#   KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD (or _FILE)
#   SHIPPING_COMMANDS_TOPIC   default shipping.commands
#   SHIPPING_REPLIES_TOPIC    default shipping.replies
#   SHIPPING_GROUP            consumer group, default kcat-shipping
#   SHIPPING_STATE_FILE       default ./shipping.state
#   SHIPPING_FAIL             1: refuse every shipment (the failure switch), default 0
#   SHIPPING_CARRIER          carrier name in replies, default shellpost
#   KCAT                      the kcat binary, default kcat
#   KCAT_OPTS                 extra kcat arguments for every call, e.g. "-X debug=broker"
set -euo pipefail

: "${KAFKA_BOOTSTRAP_SERVERS:?set KAFKA_BOOTSTRAP_SERVERS=host:port}"
COMMANDS_TOPIC=${SHIPPING_COMMANDS_TOPIC:-shipping.commands}
REPLIES_TOPIC=${SHIPPING_REPLIES_TOPIC:-shipping.replies}
GROUP=${SHIPPING_GROUP:-kcat-shipping}
STATE_FILE=${SHIPPING_STATE_FILE:-./shipping.state}
FAIL=${SHIPPING_FAIL:-0}
CARRIER=${SHIPPING_CARRIER:-shellpost}
SOURCE=examples/kcat-shipping
KCAT=${KCAT:-kcat}
read -r -a EXTRA <<<"${KCAT_OPTS:-}"

log() { printf '%s shipping.sh: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# -- librdkafka settings from the same KAFKA_* variables the Python processes read --------
# Written to a private file so that a password never shows in the process list.
CONF=$(mktemp)
chmod 600 "$CONF"
CONSUMER_PID=
cleanup() {
    # Give kcat a few seconds to commit its offsets and leave its group (so that a
    # restarted script does not join while the old member is still in it), no more.
    if [ -n "$CONSUMER_PID" ]; then
        kill "$CONSUMER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$CONSUMER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$CONSUMER_PID" 2>/dev/null || true
        wait "$CONSUMER_PID" 2>/dev/null || true
    fi
    rm -f "$CONF"
}
trap cleanup EXIT
trap 'exit 0' TERM INT
{
    echo "bootstrap.servers=$KAFKA_BOOTSTRAP_SERVERS"
    echo "security.protocol=${KAFKA_SECURITY_PROTOCOL:-PLAINTEXT}"
    [ -n "${KAFKA_SSL_CAFILE:-}" ] && echo "ssl.ca.location=$KAFKA_SSL_CAFILE"
    [ -n "${KAFKA_SSL_CERTFILE:-}" ] && echo "ssl.certificate.location=$KAFKA_SSL_CERTFILE"
    [ -n "${KAFKA_SSL_KEYFILE:-}" ] && echo "ssl.key.location=$KAFKA_SSL_KEYFILE"
    [ -n "${KAFKA_SSL_KEY_PASSWORD:-}" ] && echo "ssl.key.password=$KAFKA_SSL_KEY_PASSWORD"
    case "${KAFKA_SECURITY_PROTOCOL:-PLAINTEXT}" in
    SASL_*)
        password=${KAFKA_SASL_PASSWORD:-}
        [ -n "${KAFKA_SASL_PASSWORD_FILE:-}" ] && password=$(<"$KAFKA_SASL_PASSWORD_FILE")
        echo "sasl.mechanisms=${KAFKA_SASL_MECHANISM:-PLAIN}"
        echo "sasl.username=${KAFKA_SASL_USERNAME:-}"
        echo "sasl.password=$password"
        ;;
    esac
} >"$CONF"

# -- JSON, just enough of it -------------------------------------------------------------

# Prints "name<TAB>value" for each top-level string member of the JSON object on stdin
# (members nested in "data" are skipped, so a data field called "id" cannot fool it).
top_level_strings() {
    awk '{
        s = $0; n = length(s); depth = 0; key = ""; i = 1
        while (i <= n) {
            c = substr(s, i, 1)
            if (c == "\"") {
                str = ""; j = i + 1
                while (j <= n) {
                    d = substr(s, j, 1)
                    if (d == "\\") { str = str substr(s, j, 2); j += 2; continue }
                    if (d == "\"") break
                    str = str d; j++
                }
                i = j + 1
                if (depth == 1) {
                    while (substr(s, i, 1) ~ /[ \t]/) i++
                    if (substr(s, i, 1) == ":") { key = str; i++; continue }
                    if (key != "") { print key "\t" str; key = "" }
                }
                continue
            }
            if (c == "{" || c == "[") depth++
            else if (c == "}" || c == "]") depth--
            else if (c == "," && depth == 1) key = ""
            i++
        }
    }'
}

# A JSON string literal (the value is already JSON-escaped when it came from JSON).
q() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }

# -- the step ----------------------------------------------------------------------------

touch "$STATE_FILE"

recorded_reply() { awk -F'\t' -v id="$1" '$1 == id { print $3; exit }' "$STATE_FILE"; }
recorded() { awk -F'\t' -v id="$1" '$1 == id { found = 1; exit } END { exit !found }' "$STATE_FILE"; }

send() { # send SAGA_ID REPLY_JSON
    # The reply must land in the saga's partition: partition by the Java/aiokafka key
    # hash (murmur2), not librdkafka's default (crc32).
    printf '%s\n' "$2" | "$KCAT" -F "$CONF" "${EXTRA[@]}" -q -P -t "$REPLIES_TOPIC" -k "$1" \
        -X partitioner=murmur2_random -H "content-type=application/cloudevents+json"
}

handle() { # handle COMMAND_JSON
    local id="" type="" sagaid="" time="" traceparent="" name value
    while IFS=$'\t' read -r name value; do
        case "$name" in
        id) id=$value ;;
        type) type=$value ;;
        sagaid) sagaid=$value ;;
        time) time=$value ;;
        traceparent) traceparent=$value ;;
        esac
    done < <(printf '%s\n' "$1" | top_level_strings)
    if [ -z "$id" ] || [ -z "$sagaid" ]; then
        log "skipping a record that is not a CloudEvent with id and sagaid"
        return
    fi
    local reply
    reply=$(recorded_reply "$id")
    if [ -n "$reply" ]; then
        log "duplicate $type $id: answering as before"
        send "$sagaid" "$reply"
        return
    fi
    local shipment="shp-$sagaid" answer data
    case "$type" in
    shipping.schedule)
        if [ "$FAIL" = 1 ]; then
            answer=shipping.failed
            data="{\"reason\":\"carrier $CARRIER refused the pickup (SHIPPING_FAIL=1)\",\"carrier\":$(q "$CARRIER")}"
        elif recorded "cancelled:$sagaid"; then
            answer=shipping.failed
            data="{\"reason\":\"the saga's shipment was cancelled: a late schedule books nothing\"}"
        else
            local day=${time:0:10}
            [ -n "$day" ] || day=$(date -u +%F)
            answer=shipping.scheduled
            data="{\"shipment_id\":$(q "$shipment"),\"carrier\":$(q "$CARRIER"),\"day\":$(q "$day")}"
        fi
        ;;
    shipping.cancel)
        answer=shipping.cancelled
        data="{\"shipment_id\":$(q "$shipment")}"
        printf 'cancelled:%s\t-\t-\n' "$sagaid" >>"$STATE_FILE"
        ;;
    *)
        log "ignoring $type $id (not a shipping command)"
        return
        ;;
    esac
    reply="{\"specversion\":\"1.0\",\"id\":$(q "$id:$answer"),\"source\":$(q "$SOURCE")"
    reply+=",\"type\":$(q "$answer"),\"time\":$(q "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
    reply+=",\"datacontenttype\":\"application/json\",\"sagaid\":$(q "$sagaid")"
    reply+=",\"causationid\":$(q "$id")"
    [ -n "$traceparent" ] && reply+=",\"traceparent\":$(q "$traceparent")"
    reply+=",\"data\":$data}"
    # Recorded before it is sent: after a crash in between, the redelivered command
    # gets this same reply, and the effect happens once.
    printf '%s\t%s\t%s\n' "$id" "$answer" "$reply" >>"$STATE_FILE"
    send "$sagaid" "$reply"
    log "$type $id (saga $sagaid) -> $answer"
}

log "consuming $COMMANDS_TOPIC as group $GROUP, replying on $REPLIES_TOPIC (SHIPPING_FAIL=$FAIL)"
exec 3< <(exec "$KCAT" -F "$CONF" "${EXTRA[@]}" -G "$GROUP" -u -f '%s\n' \
    -X auto.offset.reset=earliest -X session.timeout.ms=6000 -X heartbeat.interval.ms=1000 \
    "$COMMANDS_TOPIC")
CONSUMER_PID=$!
while IFS= read -r -u 3 value; do
    [ -n "$value" ] && handle "$value"
done
wait "$CONSUMER_PID"
