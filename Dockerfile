# syntax=docker/dockerfile:1
# One Dockerfile, two targets:
#   docker build --target write-api -t notify/write-api:0.1.0 .
#   docker build --target read-api  -t notify/read-api:0.1.0  .
# Each service module builds on its own (GOWORK=off, `replace notify/pkg => ../pkg`),
# so the image needs only pkg/ and the service directory, not every module in go.work.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOWORK=off
COPY pkg/ pkg/

FROM build AS write-api-build
COPY write-api/ write-api/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    cd write-api && go build -trimpath -ldflags="-s -w" -o /out/write-api .

FROM build AS read-api-build
COPY read-api/ read-api/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    cd read-api && go build -trimpath -ldflags="-s -w" -o /out/read-api .

# distroless static: CA certificates (for rediss://), tzdata, no shell. USER is
# numeric (the image's nonroot user) so that Kubernetes' runAsNonRoot can check it.
FROM gcr.io/distroless/static-debian12:nonroot AS write-api
COPY --from=write-api-build /out/write-api /write-api
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/write-api"]

FROM gcr.io/distroless/static-debian12:nonroot AS read-api
COPY --from=read-api-build /out/read-api /read-api
USER 65532:65532
EXPOSE 8081
ENTRYPOINT ["/read-api"]
