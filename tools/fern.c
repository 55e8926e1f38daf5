#include <stdio.h>
#include "fern/fern.h"
int main(void) { printf("fern %s, %d ops\n", fern_version(), fern_op_count()); return 0; }
