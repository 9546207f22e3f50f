# Sourced by eventgrid.sh and callgrind-eventgrid.sh: the hubmq configuration both run.
#
# write_eventgrid_config FILE WORKERS HTTP_PORT EG_PORT AUDIENCE ISSUER PUBLIC_PEM KEY_LABEL
# One Event Grid namespace `bench` on its own TCP listener (the http listener only carries the
# server's public endpoint): every client may publish and subscribe anywhere under fleet/, with
# CUSTOM-JWT tokens from ISSUER for AUDIENCE checked against PUBLIC_PEM. Rate quotas are off
# (0 = no limit): Event Grid's per-TU defaults (1000 publishes/s per session and per namespace,
# 100 deliveries/s per session) would cap the load long before the broker's CPU does, and
# mosquitto has no such limits.
write_eventgrid_config() {
    local file=$1 workers=$2 http=$3 eg=$4 audience=$5 issuer=$6 pem=$7 label=$8
    cat >"$file" <<EOF
[server]
workers = $workers
public_endpoints = ["http://127.0.0.1:$http"]

[[listeners]]
kind = "http"
bind = "127.0.0.1:$http"

[[listeners]]
kind = "tcp"
bind = "127.0.0.1:$eg"
namespace = "bench"

[auth]
access_keys = ["$label-$(date +%s%N)"]

[eventgrid.namespaces.bench]
hostnames = ["$audience"]

[eventgrid.namespaces.bench.custom_jwt]
issuer = "$issuer"
public_key_files = ["$pem"]

[[eventgrid.namespaces.bench.topic_spaces]]
name = "fleet"
templates = ["fleet/#"]

[[eventgrid.namespaces.bench.permission_bindings]]
name = "fleet-pub"
client_group = "\$all"
topic_space = "fleet"
permission = "Publisher"

[[eventgrid.namespaces.bench.permission_bindings]]
name = "fleet-sub"
client_group = "\$all"
topic_space = "fleet"
permission = "Subscriber"

[eventgrid.namespaces.bench.quotas]
connects_per_second = 0
session_connects_per_second = 0
publishes_per_second = 0
publish_bytes_per_second = 0
session_publishes_per_second = 0
session_publish_bytes_per_second = 0
subscribes_per_second = 0
session_subscribes_per_second = 0
session_deliveries_per_second = 0
session_delivery_bytes_per_second = 0
EOF
}
