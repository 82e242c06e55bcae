/* A process holding MB megabytes of anonymous memory (every page written
 * with a non-zero pattern, so every page is real and CRIU must save it),
 * then creating /ready and sleeping: the workload of bench/checkpoint.sh. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	size_t mb = argc > 1 ? strtoul(argv[1], NULL, 10) : 100;
	size_t n = mb << 20;
	unsigned char *p = malloc(n);
	if (!p)
		return 1;
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 7 + 1);
	close(open("/ready", O_CREAT | O_WRONLY, 0644));
	for (;;)
		pause();
}
