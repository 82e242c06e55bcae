# An application on Debian: a package-like RUN step, the sources copied in,
# a step that works on them.
FROM bench-debian
ENV APP_HOME=/srv/app LANG=C.UTF-8
RUN mkdir -p /opt/tools && cp -a /usr/share/doc /opt/tools/doc && find /opt/tools -type f | wc -l > /opt/tools/count
WORKDIR $APP_HOME
COPY src/ ./src/
COPY config.ini ./
RUN find src -type f -name '*.txt' | sort | xargs cat | sha256sum > checksum && tar czf /srv/src.tgz src
EXPOSE 8080
CMD ["cat", "/srv/app/checksum"]
