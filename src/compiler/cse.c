#include "passes.h"
int fern__pass_cse(fern_graph *g) { (void)g; return 0; }
