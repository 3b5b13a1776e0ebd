module notify/e2e

go 1.26.8

require notify/pkg v0.0.0

replace notify/pkg => ../pkg
