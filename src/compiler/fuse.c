#include "passes.h"
int fern__pass_fuse(fern_graph *g) { (void)g; return 0; }
