module notify/write-api

go 1.26.8
