#include "passes.h"
int fern__pass_inline(fern_graph *g) { (void)g; return 0; }
