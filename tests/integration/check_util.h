// Moved to tests/common/reference_check.h; this forwarding header goes once its last user
// (tests/gpu_server) includes that one.
#ifndef ATTND_TESTS_INTEGRATION_CHECK_UTIL_H_
#define ATTND_TESTS_INTEGRATION_CHECK_UTIL_H_

#include "tests/common/reference_check.h"

#endif  // ATTND_TESTS_INTEGRATION_CHECK_UTIL_H_
