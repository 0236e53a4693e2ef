module ferry.dev/bench/limit

go 1.24
