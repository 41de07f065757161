"""The file to give `spark-submit`: it runs `convoscope spark-derive` with the arguments that follow.

    spark-submit --master URL "$(python -c 'import convoscope.spark_submit as m; print(m.__file__)')" \
        --events s3a://bucket/events/ --out s3a://bucket/lake/
"""

import sys

from convoscope.cli import main

if __name__ == "__main__":
    main(["spark-derive", *sys.argv[1:]])
