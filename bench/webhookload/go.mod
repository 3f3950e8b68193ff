module leaksidecar/bench/webhookload

go 1.19
