#include "passes.h"
int fern__pass_infer(fern_graph *g) { (void)g; return 0; }
