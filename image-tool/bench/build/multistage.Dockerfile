# Build on Debian, ship the result on busybox.
FROM bench-debian AS build
COPY src/ /work/src/
RUN cd /work && tar cf - src | gzip -1 > /work/bundle.tgz && ls -l /work > /work/listing
FROM bench-busybox
COPY --from=build /work/bundle.tgz /work/listing /app/
COPY config.ini /etc/app.ini
CMD ["ls", "-l", "/app"]
