// cdktf's jest matchers (Testing.setupJest) for the type checker.
import "cdktf/lib/testing/adapters/jest";
