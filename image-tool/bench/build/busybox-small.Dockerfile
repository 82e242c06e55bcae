# Small and mostly settings: what a cache hit costs.
FROM bench-busybox
LABEL org.example.bench=1
ENV A=1 B=2
WORKDIR /app
COPY config.ini ./
RUN echo built > /app/stamp
USER nobody
CMD ["cat", "/app/config.ini"]
