module notify/read-api

go 1.26.8
