#include "passes.h"
int fern__pass_simplify(fern_graph *g) { (void)g; return 0; }
