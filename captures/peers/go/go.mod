module mtlscope/captures/peers/go

go 1.19
