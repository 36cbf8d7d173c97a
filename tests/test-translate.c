/* test-translate.c — being written; see the helper's task. */
#include "harness.h"

TCase *tcase_translate(void)
{
    TCase *tc = tcase_create("translate");
    return tc;
}
