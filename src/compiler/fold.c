#include "passes.h"
int fern__pass_fold(fern_graph *g) { (void)g; return 0; }
