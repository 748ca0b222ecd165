import type { TestMetrics } from '../contract';

/** The task's test metrics as JSON lines name them: test_accuracy, or task, test_rmse, test_mae and test_r2 (and test_loss when known). */
export function testMetricsJson(metrics: Partial<TestMetrics>): Record<string, unknown> {
  const loss = metrics.testLoss === undefined ? {} : { test_loss: metrics.testLoss };
  if (metrics.task === 'regression')
    return { task: 'regression', test_rmse: metrics.testRmse, test_mae: metrics.testMae, test_r2: metrics.testR2, ...loss };
  return { test_accuracy: metrics.testAccuracy, ...loss };
}
